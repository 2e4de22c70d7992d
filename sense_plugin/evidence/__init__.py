"""Evidence exports: rendering (burned-in time, comment, masks, crop, scale) and signatures."""
