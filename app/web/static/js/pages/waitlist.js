// waitlist: see below
