// seatmap: see below
