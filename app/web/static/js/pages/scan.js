// scan: see below
