from sam2.modeling import Component


class PositionEmbeddingSine(Component):
    pass
