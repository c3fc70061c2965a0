"""The contract suite: Stripe behaviour Meterdesk relies on, against the emulator and real Stripe test mode."""
