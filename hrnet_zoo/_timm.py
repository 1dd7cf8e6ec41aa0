"""Registration of the HRNet variants with timm, and their specs in the model table.

``import hrnet_zoo`` replaces timm's own ``hrnet_*`` entrypoints with ours. The pretrained configs
(tags such as ``hrnet_w32.ms_in1k`` and their ``hf_hub_id``) are taken from timm's own
``timm.models.hrnet.default_cfgs`` at import time, so every weight timm can load resolves the same
files into our model (the state_dict layouts are identical). timm's "Overwriting ..." warning is
silenced for these names only: the override is intended.

The classifiers are also specs of the one model table (:data:`SPECS`, ``task='classification'``):
``hrnet_zoo.get_model_spec('hrnet_w32')``; their builders go through ``timm.create_model`` (timm's
machinery loads their pretrained weights), ``checkpoint_path=`` through the hub's source layouts.
"""
from __future__ import annotations

import warnings
from typing import Any, Optional

from timm.models import build_model_with_cfg, register_model
from timm.models._builder import pretrained_cfg_for_features, resolve_pretrained_cfg
from timm.models.hrnet import default_cfgs as _timm_hrnet_cfgs

from .classifier import HighResolutionNet, HighResolutionNetFeatures
from .configs import get_config
from .hub.fetch import fetch_pretrained, merge_into_default_cfgs
from .tasks.registry import ModelSpec, register_specs

# One source of truth for the pretrained tags: timm's table for the same architectures, plus the
# records of weights/manifest.json (new tags, or our own hf_hub_id) merged in without modifying it.
default_cfgs = merge_into_default_cfgs(dict(_timm_hrnet_cfgs))


def _drop_unbuilt_modules(state_dict, model):
    """features_only: drop the weights of top-level modules the features model does not build (the
    head's downsamp_modules / final_layer / classifier), so loading them raises no warning noise."""
    built = {name for name, _ in model.named_children()}
    return {k: v for k, v in state_dict.items() if k.split('.', 1)[0] in built or '.' not in k}


def _create_hrnet(variant: str, pretrained: bool = False, **kwargs: Any):
    """Build ``variant`` through timm's builder (pretrained_cfg, weight loading, feature wrappers).

    ``features_only=True`` gives :class:`HighResolutionNetFeatures` (``feature_location`` one of
    ``'incre'``, ``''``, ``'v2'``, ``'v2p'``) unless a timm ``feature_cls`` (``'getter'``,
    ``'hook'``, ``'fx'``, ``'dict'``) is asked for, which then wraps the classifier the timm way:
    its maps are the default location's (stem + the head's four bottlenecks).
    """
    cfg = get_config(variant)
    features_only = kwargs.get('features_only', False)
    feature_cls = kwargs.get('feature_cls', (kwargs.get('feature_cfg') or {}).get('feature_cls'))
    native_features = features_only and feature_cls in (None, 'hrnet')
    if features_only and feature_cls == 'dict':
        raise ValueError("feature_cls='dict' (timm's FeatureDictNet) needs a sequential model, and HRNet's "
                         "branches run in parallel; use the default, 'hook', 'fx' or 'getter' (return_dict=True "
                         "in feature_cfg gives a dict)")
    if features_only and not native_features:
        location = kwargs.pop('feature_location', 'incre')
        if location != 'incre':
            raise ValueError(f"feature_location={location!r} needs hrnet-zoo's own features model: drop "
                             f"feature_cls={feature_cls!r} (timm's wrappers take the classifier's maps, "
                             f"feature_location='incre')")
    model_cls = HighResolutionNet
    kwargs_filter = None
    if native_features:
        kwargs.pop('features_only')
        kwargs.pop('feature_cls', None)
        model_cls = HighResolutionNetFeatures
        kwargs_filter = ('num_classes', 'global_pool')
    if pretrained:
        # Hub weights: fetch into timm's cache first, checking the manifest's sha256 and turning
        # "no network, no cache" into an error that says how to supply a local file.
        fetch_pretrained(resolve_pretrained_cfg(variant, kwargs.get('pretrained_cfg'),
                                                kwargs.get('pretrained_cfg_overlay')).to_dict(),
                         cache_dir=kwargs.get('cache_dir'))
    model = build_model_with_cfg(
        model_cls, variant, pretrained, model_cfg=cfg,
        pretrained_strict=not features_only, kwargs_filter=kwargs_filter,
        pretrained_filter_fn=_drop_unbuilt_modules if native_features else None, **kwargs)
    if native_features:
        model.pretrained_cfg = model.default_cfg = pretrained_cfg_for_features(model.pretrained_cfg)
    # the zoo's task key (as the task models'); timm's PretrainedCfg has no such field, so the
    # folder writer drops it from config.json
    model.pretrained_cfg['task'] = 'classification'
    return model


def _entrypoint(name: str):
    def fn(pretrained: bool = False, **kwargs: Any) -> HighResolutionNet:
        return _create_hrnet(name, pretrained, **kwargs)
    fn.__name__ = fn.__qualname__ = name
    fn.__module__ = __name__
    fn.__doc__ = (f'{name}: HRNet ImageNet classifier (hrnet_zoo implementation); '
                  f'``features_only=True`` for feature maps.')
    return fn


# The classifiers: name -> the official name of the network (HRNet-Image-Classification README).
DESCRIPTIONS = {
    'hrnet_w18_small': 'HRNet-W18-C-Small-v1 classifier', 'hrnet_w18_small_v2': 'HRNet-W18-C-Small-v2 classifier',
    **{f'hrnet_w{w}': f'HRNet-W{w}-C classifier' for w in (18, 30, 32, 40, 44, 48, 64)},
    'hrnet_w18_ssld': 'HRNet-W18-C with PaddleClas SSLD weights (head convs without bias)',
    'hrnet_w48_ssld': 'HRNet-W48-C with PaddleClas SSLD weights (head convs without bias)',
}
MODEL_NAMES = tuple(DESCRIPTIONS)
OUTPUT_KEY = 'classifier.weight'
SPECS = tuple(ModelSpec(name=n, task='classification', trunk=n, head='classifier', num_outputs=1000,
                        input_size=(224, 224), dataset='imagenet-1k', description=d) for n, d in DESCRIPTIONS.items())


def build(spec: ModelSpec, pretrained: bool = False, tag: Optional[str] = None, cache_dir: Optional[str] = None,
          **kwargs: Any) -> HighResolutionNet:
    """The classifier of ``spec`` through ``timm.create_model`` (``name.tag`` for a pretrained tag):
    timm's builder, pretrained cfgs and weight loading (``cache_dir``: the Hub cache)."""
    import timm
    if cache_dir is not None:
        kwargs['cache_dir'] = cache_dir
    return timm.create_model(f'{spec.name}.{tag}' if tag else spec.name, pretrained=pretrained, **kwargs)


with warnings.catch_warnings():
    warnings.filterwarnings('ignore', message=r'Overwriting hrnet_\w+ in registry')
    for _name in MODEL_NAMES:
        globals()[_name] = register_model(_entrypoint(_name))

BUILDERS = register_specs(SPECS, build, output_key=OUTPUT_KEY, builds_pretrained=True)
