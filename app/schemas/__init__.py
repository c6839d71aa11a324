"""Request and response models, per domain."""
