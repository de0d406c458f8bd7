"""timm.data's data config resolution, for the stand-in timm (see __init__.py)."""


def resolve_model_data_config(model):
    return dict(model.pretrained_cfg)
