"""Providers, one module each. Heavy libraries are imported inside the modules that need them."""
