// The header carries the code.
