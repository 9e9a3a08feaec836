// The validator module.
