// notifications: see below
