from sam2.modeling import Component


class MemoryAttention(Component):
    pass


class MemoryAttentionLayer(Component):
    pass
