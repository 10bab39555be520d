"""Stand-in for Pillow's `PIL.Image.new` (the serving images ship Pillow; the test environment does not)."""
