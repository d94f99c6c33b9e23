"""pretraining stage."""
