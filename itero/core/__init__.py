"""Pure tensor maths. Imports torch only; every function is tested on hand-computed numbers."""
