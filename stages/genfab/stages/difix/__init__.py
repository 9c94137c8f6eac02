"""The lab's DiFix data generation: triplet export, leak-free split, trainer adapter."""
