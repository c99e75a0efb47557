"""The byte pipes to a device, one module each, all behind `base.Channel`."""
