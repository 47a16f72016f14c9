"""Built-in behaviour, registered through the same hooks that third-party plugins use."""
