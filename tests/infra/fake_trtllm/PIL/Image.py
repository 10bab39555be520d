class Image:
    def __init__(self, mode, size):
        self.mode, self.size = mode, size


def new(mode, size, color=0):
    return Image(mode, size)
