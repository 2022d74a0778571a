// Pure allocation planning (in progress).
