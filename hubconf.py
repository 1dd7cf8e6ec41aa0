"""torch.hub entry points for hrnet-zoo.

    import torch
    model = torch.hub.load('<owner>/hrnet-zoo', 'hrnet_w32', pretrained=True)
    feats = torch.hub.load('<owner>/hrnet-zoo', 'hrnet_w32', features_only=True, feature_location='v2')
    any = torch.hub.load('<owner>/hrnet-zoo', 'hrnet', name='hrnet_w18_small_v2')

    pose = torch.hub.load('<owner>/hrnet-zoo', 'hrnet_w32_pose_coco_256x192', pretrained=True)
    seg = torch.hub.load('<owner>/hrnet-zoo', 'hrnet', 'hf-hub:hrnet-zoo/hrnet_w48_seg_cityscapes', pretrained=True)

Keyword arguments pass through to the builder (``pretrained``, ``features_only``, ``out_indices``,
``feature_location``, ``num_classes``, ``in_chans``, ...). Pretrained weights come from the Hugging
Face Hub (cache, ``HF_HUB_OFFLINE``, ``HF_ENDPOINT`` apply): classifiers through timm's machinery,
task models through hrnet_zoo's loader (sha256 from the manifest, strict load).
"""
dependencies = ['torch', 'timm', 'safetensors', 'huggingface_hub']

import hrnet_zoo as _zoo  # noqa: E402  (torch.hub reads `dependencies` before importing)


def hrnet(name: str, pretrained: bool = False, **kwargs):
    """Any hrnet-zoo model by name: a classifier/backbone (``'hrnet_w32'``, ``'hrnet_w32.ms_in1k'``),
    a task model listed by ``hrnet_zoo.list_models()``, or a published repo (``'hf-hub:org/name'``,
    ``'local-dir:/path'``).

    Args:
        name: model name.
        pretrained: load pretrained weights.
        **kwargs: passed to the builder (``features_only``, ``out_indices``, ``feature_location``,
            ``num_classes``, ...).
    """
    if name.startswith(('hf-hub:', 'local-dir:')):
        from hrnet_zoo.hub import model_of_repo
        task_model = model_of_repo(name, cache_dir=kwargs.get('cache_dir'))
        if task_model is not None:  # a task repo: its model, with the repo's weights
            weights = name.partition(':')[2] if name.startswith('local-dir:') else name
            return _zoo.create_model(task_model, pretrained=weights if pretrained else False, **kwargs)
        import timm
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    return _zoo.create_model(name, pretrained=pretrained, **kwargs)


def hrnet_w18_small(pretrained: bool = False, **kwargs):
    """HRNet-W18-C-Small-v1 classifier (13.2M params, weights `hrnet_w18_small.ms_in1k`, ImageNet top-1 72.3).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w18_small.ms_in1k', pretrained, **kwargs)


def hrnet_w18_small_v2(pretrained: bool = False, **kwargs):
    """HRNet-W18-C-Small-v2 classifier (15.6M params, weights `hrnet_w18_small_v2.ms_in1k`, ImageNet top-1 75.1).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w18_small_v2.ms_in1k', pretrained, **kwargs)


def hrnet_w18(pretrained: bool = False, **kwargs):
    """HRNet-W18-C classifier (21.3M params, weights `hrnet_w18.ms_aug_in1k`, ImageNet top-1 77.9).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w18.ms_aug_in1k', pretrained, **kwargs)


def hrnet_w30(pretrained: bool = False, **kwargs):
    """HRNet-W30-C classifier (37.7M params, weights `hrnet_w30.ms_in1k`, ImageNet top-1 78.2).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w30.ms_in1k', pretrained, **kwargs)


def hrnet_w32(pretrained: bool = False, **kwargs):
    """HRNet-W32-C classifier (41.2M params, weights `hrnet_w32.ms_in1k`, ImageNet top-1 78.5).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w32.ms_in1k', pretrained, **kwargs)


def hrnet_w40(pretrained: bool = False, **kwargs):
    """HRNet-W40-C classifier (57.6M params, weights `hrnet_w40.ms_in1k`, ImageNet top-1 78.9).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w40.ms_in1k', pretrained, **kwargs)


def hrnet_w44(pretrained: bool = False, **kwargs):
    """HRNet-W44-C classifier (67.1M params, weights `hrnet_w44.ms_in1k`, ImageNet top-1 78.9).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w44.ms_in1k', pretrained, **kwargs)


def hrnet_w48(pretrained: bool = False, **kwargs):
    """HRNet-W48-C classifier (77.5M params, weights `hrnet_w48.ms_in1k`, ImageNet top-1 79.3).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w48.ms_in1k', pretrained, **kwargs)


def hrnet_w64(pretrained: bool = False, **kwargs):
    """HRNet-W64-C classifier (128.1M params, weights `hrnet_w64.ms_in1k`, ImageNet top-1 79.5).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w64.ms_in1k', pretrained, **kwargs)


def hrnet_w18_ssld(pretrained: bool = False, **kwargs):
    """HRNet-W18-C with PaddleClas SSLD weights (weights `hrnet_w18_ssld.paddle_in1k`, ImageNet top-1 81.2).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w18_ssld.paddle_in1k', pretrained, **kwargs)


def hrnet_w48_ssld(pretrained: bool = False, **kwargs):
    """HRNet-W48-C with PaddleClas SSLD weights (weights `hrnet_w48_ssld.paddle_in1k`, ImageNet top-1 83.6).
    Keyword arguments pass through to the builder."""
    return hrnet('hrnet_w48_ssld.paddle_in1k', pretrained, **kwargs)


# Task models (pose, landmarks, segmentation, detection): one entry per name of hrnet_zoo's model
# table (the classifiers have their entries above, each pinned to a weight), made from the table so
# that hubconf never drifts from it; each carries its builder's docstring.
def _task_entry(name: str):
    builder = _zoo.MODEL_BUILDERS[name]

    def entry(pretrained: bool = False, **kwargs):
        return builder(pretrained=pretrained, **kwargs)
    entry.__name__ = entry.__qualname__ = name
    entry.__doc__ = (builder.__doc__ or name).strip() + '\n\nKeyword arguments pass through to the builder.'
    return entry


for _name, _spec in _zoo.MODEL_SPECS.items():
    if _spec.task != 'classification':
        globals()[_name] = _task_entry(_name)
