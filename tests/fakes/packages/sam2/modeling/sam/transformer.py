from sam2.modeling import Component


class RoPEAttention(Component):
    pass
