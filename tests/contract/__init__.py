"""The contract suite: the Stripe behaviour Meterdesk relies on, checked against the
emulator and against real Stripe test mode (README, "Contract suite")."""
