"""A model of PAYG device firmware: keypad, RTC, non-volatile state, feedback."""
