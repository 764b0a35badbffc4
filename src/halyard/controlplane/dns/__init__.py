"""``halyard dns``: an authoritative responder for the private DNS zones in the store (the A record sets that
private endpoints' zone groups and operators wrote), so an on-prem DNS server forwards those zones to it."""
