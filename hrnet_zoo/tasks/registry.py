"""The model table: one frozen :class:`ModelSpec` per named model (classifiers and task models
alike), as data, and the builders generated from it.

``hrnet_zoo._timm`` lists the classifiers (``task='classification'``, built by timm's registration),
every task package lists its models in its ``specs.py``; each calls :func:`register_specs` with
the function that builds a model from a spec. The generated builder (``hrnet_zoo.create_model``,
``hubconf.py`` and the task packages' attributes all reach it) builds the model with its
``pretrained_cfg``, then hands ``checkpoint_path=`` / ``pretrained=`` to the weight hub.

The table never imports the weight hub (:mod:`hrnet_zoo.hub`): the hub reads the table (tasks,
specs, key maps, output tensors) to validate records, convert, verify and say which model a file
fits, so the dependency runs one way. The hub plugs its two services in with :func:`connect_hub`
when it is imported (``import hrnet_zoo`` does that before any builder can run): loading weights
into a built model, and the Hub repo of a model's published weight for its ``pretrained_cfg``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from torch import nn

from ..checkpoint import KeyMap, load_weights

__all__ = ['TASKS', 'OfficialCheckpoint', 'ModelSpec', 'TaskModelSpec', 'MODEL_SPECS', 'MODEL_BUILDERS',
           'TASK_MODELS', 'TASK_SPECS', 'OUTPUT_KEYS', 'register_specs', 'register_task_model', 'get_model_spec',
           'load_checkpoint', 'key_map_of', 'connect_hub']

TASKS = ('classification', 'pose', 'landmarks', 'segmentation', 'detection')
CODEC_TASKS = ('pose', 'landmarks')  # the tasks whose models decode heatmaps through a codec
# the constructor argument that holds a task's output count
OUTPUT_ARG = {'classification': 'num_classes', 'pose': 'num_keypoints', 'landmarks': 'num_landmarks',
              'segmentation': 'num_classes', 'detection': 'num_classes'}


@dataclass(frozen=True)
class OfficialCheckpoint:
    """An official checkpoint: its file name, the repository that publishes it (and the page or
    link it is published at), and the key map from its layout to ours."""
    filename: str
    repo: str
    published_at: str = ''
    key_map: KeyMap = KeyMap()


@dataclass(frozen=True)
class ModelSpec:
    """A named model of the zoo (a classifier or a task model), as data.

    Args:
        name: registered name (``hrnet_w32``, ``hrnet_w32_pose_coco_256x192``).
        task: one of :data:`TASKS`.
        trunk: HRNet variant of :data:`hrnet_zoo.HRNET_CONFIGS` (``'hrnet_w32'``).
        head: the representation/head (``'classifier'``, ``'v1'``, ``'v2'``, ``'v2_ocr'``,
            ``'v2p_fasterrcnn'``, ...).
        num_outputs: classes / keypoints / landmarks (detection: classes with the background).
        input_size: (H, W) the model is configured for (classifier and pose / landmark crops,
            segmentation crop, detection's short side x long side).
        dataset: the training set.
        flip_pairs: left/right output pairs for flip test and flip augmentation.
        mean, std: input normalisation (RGB, 0-1 images).
        official: the official checkpoint and its key map, when one is published.
        key_map: the official key layout of a model whose official file is not known (the
            official code's layout all the same); ``official.key_map`` wins when both are set.
        metrics: official metrics ``{'dataset': ..., 'split': ..., <metric>: value, 'source': ...}``.
        options: constructor options of the head (``align_corners``, detector settings, ...).
        license: license of the official weights.
        description: one line for docs and the builder's docstring.
        codec: the heatmap codec the weights were trained with (pose / landmarks; a name of
            :data:`hrnet_zoo.tasks.codecs.CODECS`): crop geometry, targets, decoding and flip test.
    """
    name: str
    task: str
    trunk: str
    head: str
    num_outputs: int
    input_size: Tuple[int, int]
    dataset: str
    flip_pairs: Tuple[Tuple[int, int], ...] = ()
    mean: Tuple[float, float, float] = IMAGENET_DEFAULT_MEAN
    std: Tuple[float, float, float] = IMAGENET_DEFAULT_STD
    official: Optional[OfficialCheckpoint] = None
    metrics: Mapping[str, Any] = field(default_factory=dict)
    options: Mapping[str, Any] = field(default_factory=dict)
    license: str = 'mit'
    description: str = ''
    key_map: Optional[KeyMap] = None  # the official layout when no official file is known
    codec: Optional[str] = None

    def __post_init__(self):
        if self.task not in OUTPUT_ARG:
            raise ValueError(f'{self.name}: task must be one of {list(TASKS)}, got {self.task!r}')
        from ..configs import HRNET_CONFIGS
        if self.trunk not in HRNET_CONFIGS:
            raise ValueError(f'{self.name}: unknown trunk {self.trunk!r}')
        if self.num_outputs < 1 or len(self.input_size) != 2:
            raise ValueError(f'{self.name}: num_outputs must be positive and input_size (H, W)')
        for a, b in self.flip_pairs:
            if not (0 <= a < self.num_outputs and 0 <= b < self.num_outputs) or a == b:
                raise ValueError(f'{self.name}: flip pair {(a, b)} is not a pair of outputs below {self.num_outputs}')
        if self.codec is not None:
            from .codecs import CODECS
            if self.codec not in CODECS:
                raise ValueError(f'{self.name}: unknown codec {self.codec!r}; the codecs are {sorted(CODECS)}')

    @property
    def output_arg(self) -> str:
        """The constructor argument holding the output count (``num_keypoints``, ...)."""
        return OUTPUT_ARG[self.task]

    def pretrained_cfg(self, **changes: Any) -> Dict[str, Any]:
        """timm-style ``pretrained_cfg`` of a model built from this spec; ``changes`` are what the
        caller overrode (``num_keypoints=...``, ``input_size=...``). ``hf_hub_id`` is the Hub repo
        of the model's published weight (from the hub's records; None when there is none)."""
        h, w = changes.pop('input_size', self.input_size)
        n = changes.pop(self.output_arg, self.num_outputs)
        flip = changes.pop('flip_pairs', self.flip_pairs)
        hub_id, hub_file = _HUB['hub_location'](self.name)
        cfg = {
            'architecture': self.name, 'task': self.task, 'trunk': self.trunk, 'head': self.head,
            'input_size': (3, int(h), int(w)), 'mean': tuple(self.mean), 'std': tuple(self.std),
            self.output_arg: int(n), 'num_outputs': int(n), 'flip_pairs': [list(p) for p in flip],
            'dataset': self.dataset, 'license': self.license, 'hf_hub_id': hub_id, 'hf_hub_filename': hub_file,
            'official_checkpoint': self.official.filename if self.official else None,
            'metrics': dict(self.metrics), 'first_conv': 'conv1',
        }
        if self.codec is not None:
            cfg['codec'] = self.codec
        cfg.update({k: v for k, v in self.options.items() if isinstance(v, (bool, int, float, str))})
        cfg.update(changes)
        return cfg


TaskModelSpec = ModelSpec  # the name before classifiers joined the table (kept: task packages and users use it)

MODEL_SPECS: Dict[str, ModelSpec] = {}
MODEL_BUILDERS: Dict[str, Callable[..., nn.Module]] = {}
OUTPUT_KEYS: Dict[str, Optional[str]] = {}  # model name -> the head tensor whose rows are the outputs
# the names these had when the table held task models only: the same dicts
TASK_SPECS = MODEL_SPECS
TASK_MODELS = MODEL_BUILDERS
Builder = Callable[..., nn.Module]


def _hub_missing(*args: Any, **kwargs: Any):
    raise RuntimeError('hrnet_zoo.hub is not imported: import hrnet_zoo (it connects the weight hub)')


_HUB: Dict[str, Callable[..., Any]] = {'load': _hub_missing, 'hub_location': lambda name: (None, None)}


def connect_hub(load: Callable[..., nn.Module], hub_location: Callable[[str], Tuple[Optional[str], Optional[str]]]
                ) -> None:
    """Plug the weight hub in (called once by :mod:`hrnet_zoo.hub`): ``load(model, spec,
    pretrained=, checkpoint_path=, cache_dir=, tag=)`` loads weights into a built model;
    ``hub_location(name)`` gives ``(hf_hub_id, filename)`` of its published weight, or ``(None, None)``."""
    _HUB.update(load=load, hub_location=hub_location)


def get_model_spec(name: str) -> ModelSpec:
    """The spec of a registered model: any name of ``hrnet_zoo.list_models()``, also a weight's
    ``arch.tag`` name (``'hrnet_w32.ms_in1k'`` gives the spec of ``hrnet_w32``)."""
    spec = MODEL_SPECS.get(name) or MODEL_SPECS.get(name.split('.', 1)[0])
    if spec is None:
        raise KeyError(f'unknown model {name!r}; hrnet_zoo.list_models() (task=...) lists them')
    return spec


def register_task_model(fn: Builder) -> Builder:
    """Register a builder under its function name (for models without a spec: generic builders)."""
    if fn.__name__ in MODEL_BUILDERS:
        raise ValueError(f'model {fn.__name__!r} is registered twice')
    MODEL_BUILDERS[fn.__name__] = fn
    return fn


def register_specs(specs: Iterable[ModelSpec], build: Callable[..., nn.Module],
                   output_key: Optional[str] = None, builds_pretrained: bool = False) -> Dict[str, Builder]:
    """Register one builder per spec and return them by name.

    ``build(spec, **kwargs)`` makes the model (passing ``pretrained_cfg=spec.pretrained_cfg(...)``
    to its constructor); ``output_key`` is the head tensor whose first dimension is the output
    count (checked with a clear error when a checkpoint has another). The builder takes
    ``pretrained`` (bool, ``'hf-hub:ORG/REPO'``, a folder or a ``.safetensors`` file),
    ``checkpoint_path`` (a checkpoint of any source layout the hub knows, an engine checkpoint or
    a safetensors file), ``cache_dir`` (the Hub cache), ``tag`` (which published weight) and the
    constructor's keyword arguments. ``builds_pretrained``: ``build`` takes ``pretrained`` /
    ``cache_dir`` / ``tag`` itself (the classifiers: timm's machinery loads their weights).
    """
    out = {}
    for spec in specs:
        if spec.name in MODEL_SPECS:
            raise ValueError(f'model {spec.name!r} is registered twice')
        MODEL_SPECS[spec.name] = spec
        OUTPUT_KEYS[spec.name] = output_key
        out[spec.name] = register_task_model(_make_builder(spec, build, builds_pretrained))
    return out


def load_checkpoint(model: nn.Module, source: Any, fallback_key_map: Optional[KeyMap] = None,
                    fallback_output_key: Optional[str] = None, where: Optional[str] = None) -> nn.Module:
    """Load ``source`` in the model's official layout (an official checkpoint, an hrnet_zoo engine
    checkpoint, a ``.safetensors`` file or a state_dict) into a model strictly, through the key
    map of the model's spec (``model.pretrained_cfg['architecture']``; the fallbacks for a model
    built without a spec) with its head's output count checked: what every task package's
    ``load_official_checkpoint`` does (``checkpoint_path=`` takes the other layouts too, through
    the hub)."""
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    spec = MODEL_SPECS.get(cfg.get('architecture'))
    if spec is None:
        key_map, output_key = fallback_key_map, fallback_output_key
    else:
        key_map, output_key = key_map_of(spec), OUTPUT_KEYS.get(spec.name)
    what = OUTPUT_ARG.get(cfg.get('task'), 'num_outputs')[len('num_'):]
    load_weights(model, source, key_map, output_key, what, where)
    if cfg.get('task') in CODEC_TASKS:  # an engine / converted checkpoint records the codec it was trained with
        from .codecs import apply_checkpoint_codec
        apply_checkpoint_codec(model, source)
    return model


def key_map_of(spec: ModelSpec) -> KeyMap:
    """The key map from the spec's official layout to ours: the official checkpoint's, else the
    spec's ``key_map`` (an official layout whose file is not known), else strip ``module.``."""
    if spec.official is not None:
        return spec.official.key_map
    return spec.key_map or KeyMap()


def _make_builder(spec: ModelSpec, build: Callable[..., nn.Module], builds_pretrained: bool) -> Builder:
    def builder(pretrained: Union[bool, str, os.PathLike] = False, checkpoint_path: Optional[str] = None,
                cache_dir: Optional[str] = None, tag: Optional[str] = None, **kwargs: Any) -> nn.Module:
        if builds_pretrained:
            model = build(spec, pretrained=bool(pretrained) and not checkpoint_path, cache_dir=cache_dir, tag=tag,
                          **kwargs)
            pretrained = False
        else:
            model = build(spec, **kwargs)
        if checkpoint_path or pretrained:
            _HUB['load'](model, spec, pretrained=pretrained, checkpoint_path=checkpoint_path, cache_dir=cache_dir,
                         tag=tag)
        return model

    builder.__name__ = builder.__qualname__ = spec.name
    metric = ', '.join(f'{k} {v}' for k, v in spec.metrics.items() if isinstance(v, (int, float)))
    builder.__doc__ = (f'{spec.description or spec.name} ({spec.task}; trunk {spec.trunk}, head {spec.head}, '
                       f'{spec.num_outputs} {spec.output_arg[4:]}, input {spec.input_size[0]}x{spec.input_size[1]}, '
                       f'{spec.dataset}' + (f'; official {spec.metrics.get("dataset", "")}: {metric}' if metric else '')
                       + ').\n\n'
                       '``pretrained=True`` loads the published weight (Hugging Face Hub, see '
                       '``hrnet-zoo list --task ' + spec.task + '``), ``pretrained=\'hf-hub:ORG/REPO\'`` / a '
                       'folder / a ``.safetensors`` file loads those, ``checkpoint_path=`` a checkpoint of any '
                       'known layout (official '
                       + (f'``{spec.official.filename}``, ' if spec.official else '')
                       + 'OpenMMLab, timm; detected from its keys) or an engine checkpoint.')
    return builder


def spec_overrides(spec: ModelSpec, kwargs: Dict[str, Any], *names: str) -> Dict[str, Any]:
    """Pop the keyword arguments ``names`` that override spec fields and return the changes for
    :meth:`ModelSpec.pretrained_cfg` (only the ones given)."""
    return {n: kwargs.pop(n) for n in names if n in kwargs and kwargs[n] is not None}
