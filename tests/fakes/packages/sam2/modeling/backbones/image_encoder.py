from sam2.modeling import Component


class ImageEncoder(Component):
    pass


class FpnNeck(Component):
    pass
