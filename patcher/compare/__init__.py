"""bbpatch compare: train candidate backbones with one recipe, table accuracy beside latency."""
