"""`retain demo`: the whole study on a built-in tiny model and the built-in toy tasks, on a laptop CPU."""
