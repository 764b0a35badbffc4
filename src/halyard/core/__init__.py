"""Pure building blocks shared by every layer: errors, settings, clock, PKI, logging."""
