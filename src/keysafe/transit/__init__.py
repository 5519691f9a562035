"""Transit: encryption as a service with keys that never leave the keyring."""
