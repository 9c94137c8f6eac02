from sam2.modeling import Component


class MemoryEncoder(Component):
    pass


class MaskDownSampler(Component):
    pass


class Fuser(Component):
    pass


class CXBlock(Component):
    pass
