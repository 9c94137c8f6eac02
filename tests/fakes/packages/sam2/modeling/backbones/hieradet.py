from sam2.modeling import Component


class Hiera(Component):
    pass
