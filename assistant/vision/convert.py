"""Convert an original-LLaVA-layout checkpoint into (i) a folder vLLM serves and (ii) the client's vision bundle.

Original LLaVA checkpoints (LLaVA v1.5, LLaVA-Med v1.5, LLaVA-Rad) keep the language model as
``model.embed_tokens/layers/norm`` + ``lm_head``, the projector as ``model.mm_projector.*`` and describe the
vision side with ``mm_*`` fields in ``config.json``; their tokenizer has no image token (the LLaVA code splices
images in at index -200). The output:

- ``DST/``: an HF ``LlavaForConditionalGeneration`` folder (transformers 5 key names: ``model.language_model.*``,
  ``model.multi_modal_projector.linear_{1,2}.*``, ``lm_head.*``) whose tokenizer has an ``<image>`` token and a
  chat template. It holds no vision tower weights: vLLM serves it with ``--enable-mm-embeds
  --limit-mm-per-prompt '{"image": 0}'``, where the tower and projector are skipped.
- ``DST/radassist-vision/``: ``vision.json`` (encoder spec, projector type, LLM hidden size, image tokens) and
  ``projector.safetensors``; the client encodes with open_clip and projects with these.

The key mapping follows transformers' ``convert_llava_weights_to_hf.py`` (``model.mm_projector.0/2`` →
``multi_modal_projector.linear_1/2``, the language model moved under ``language_model``); the new image token's
embedding starts at the mean of the existing rows, as is usual when adding a token.
The folder is written to a temporary sibling and renamed into place: a half-written conversion is never used.

Public names: ``convert_llava_checkpoint``, ``ConversionResult``, ``encoder_spec_for``, ``VICUNA_V1_TEMPLATE``.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import ModelPreparationError
from assistant.vision.encoder import EncoderSpec, ImageEncoder
from assistant.vision.profiles import BUNDLE_DIR, BUNDLE_FILE, EMBED_DTYPES, VisionBundle
from assistant.vision.projector import ProjectorType, projector_from_state_dict, read_state_dict, split_projector_keys

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]

IMAGE_TOKEN = "<image>"
VOCAB_MULTIPLE = 64  # transformers' conversion pads the vocabulary to a multiple of 64 for speed
SHARD_BYTES = 4 << 30  # 4 GiB safetensors shards
PROJECTOR_FILE = "projector.safetensors"

# LLaVA's "llava_v1" / "v1" conversation (Vicuna v1.1), used by LLaVA v1.5 and LLaVA-Rad. vLLM puts the image
# placeholder in front of the user's text ("<image>\n..."), the position LLaVA was trained with.
VICUNA_V1_SYSTEM = (
    "A chat between a curious human and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the human's questions."
)
VICUNA_V1_TEMPLATE = (
    "{{ bos_token }}"
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{ messages[0]['content'] }}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}" + VICUNA_V1_SYSTEM + "{%- set loop_messages = messages -%}{%- endif -%}"
    "{%- for message in loop_messages -%}"
    "{%- if message['role'] == 'user' -%}{{ ' USER: ' + message['content'] }}"
    "{%- elif message['role'] == 'assistant' -%}{{ ' ASSISTANT: ' + message['content'] + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ ' ASSISTANT:' }}{%- endif -%}"
)

# model_type of LLaVA's language-model wrappers → the plain HF text model.
_TEXT_TYPES = {"llava": "llama", "llava_llama": "llama", "llama": "llama", "llava_mistral": "mistral",
               "mistral": "mistral"}  # fmt: skip
_TEXT_ARCH = {"llama": "LlamaForCausalLM", "mistral": "MistralForCausalLM"}
# Known HF CLIP towers of LLaVA checkpoints → the same OpenAI weights in open_clip (QuickGELU comes with the tag).
_OPENAI_TOWERS = {
    "openai/clip-vit-large-patch14-336": ("ViT-L-14-336", "openai"),
    "openai/clip-vit-large-patch14": ("ViT-L-14", "openai"),
    "openai/clip-vit-base-patch16": ("ViT-B-16", "openai"),
    "openai/clip-vit-base-patch32": ("ViT-B-32", "openai"),
}


@dataclass(frozen=True)
class ConversionResult:
    """Where the conversion went and what it found."""

    model_dir: Path
    bundle_file: Path
    image_token_index: int
    image_tokens: int | None
    llm_hidden_size: int
    projector_type: str
    encoder: EncoderSpec
    dropped_vision_tower_tensors: int = 0

    def serve_command(self, max_model_len: int = 4096) -> str:
        """The vLLM command line that serves the converted folder in embeddings-only mode."""
        return (
            f"python -m vllm.entrypoints.openai.api_server --model {self.model_dir} "
            f"--enable-mm-embeds --limit-mm-per-prompt '{{\"image\": 0}}' --max-model-len {max_model_len}"
        )


def read_llava_config(src: Path) -> dict[str, Any]:
    """The checkpoint's config.json as a dict; errors name the folder."""
    path = src / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelPreparationError(f"{src} has no config.json: not a model folder") from exc
    except (OSError, ValueError) as exc:
        raise ModelPreparationError(f"cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ModelPreparationError(f"{path} does not hold a JSON object")
    return data


def _require(config: dict[str, Any], *names: str) -> Any:
    for name in names:
        if config.get(name) is not None:
            return config[name]
    raise ModelPreparationError(f"config.json has no {names[0]}: not an original-LLaVA checkpoint")


def encoder_spec_for(
    config: dict[str, Any],
    model_name: str | None = None,
    pretrained: str | None = None,
    config_path: str | None = None,
) -> EncoderSpec:
    """The open_clip encoder a LLaVA config describes; the arguments override what the config says."""
    tower = str(_require(config, "mm_vision_tower", "vision_tower"))
    layer = int(config.get("mm_vision_select_layer", -2))
    feature = str(config.get("mm_vision_select_feature", "patch"))
    aspect = "pad" if config.get("image_aspect_ratio") == "pad" else "none"
    if model_name is None:
        if tower.startswith(("hf-hub:", "local-dir:")):
            model_name = tower
        elif tower in _OPENAI_TOWERS:
            model_name, default_pretrained = _OPENAI_TOWERS[tower]
            pretrained = pretrained or default_pretrained
        elif config.get("mm_vision_tower_config"):  # LLaVA-Rad: an open_clip JSON + checkpoint
            config_path = config_path or str(config["mm_vision_tower_config"])
            model_name = Path(config_path).stem
            pretrained = pretrained or config.get("mm_vision_tower_checkpoint")
        else:
            raise ModelPreparationError(
                f"cannot tell which open_clip model matches the vision tower {tower!r}: "
                "give --encoder-model (and --encoder-pretrained / --encoder-config)"
            )
    if config_path is not None:
        model_name = Path(config_path).stem
    return EncoderSpec(
        model_name=model_name,
        pretrained=pretrained,
        config_path=config_path,
        select_layer=layer,
        select_feature=feature,
        image_aspect_ratio=aspect,
    )


def _check_supported(config: dict[str, Any]) -> None:
    if config.get("mm_use_im_start_end"):
        raise ModelPreparationError("checkpoints with mm_use_im_start_end (image start/end tokens) are not supported")
    merge = config.get("mm_patch_merge_type", "flat")
    if merge != "flat" or config.get("image_aspect_ratio") == "anyres":
        raise ModelPreparationError(
            f"LLaVA-NeXT style checkpoints (mm_patch_merge_type={merge!r}, anyres) are not supported"
        )
    ProjectorType.depth_of(str(config.get("mm_projector_type", "linear")))


def _load_weights(src: Path) -> dict[str, Any]:
    """Every tensor of the checkpoint: safetensors (single or sharded) or PyTorch .bin files."""
    files = sorted(src.glob("*.safetensors")) or sorted(src.glob("pytorch_model*.bin")) or sorted(
        src.glob("model*.bin")
    )
    if not files:
        raise ModelPreparationError(f"{src} holds no weights (*.safetensors or pytorch_model*.bin)")
    state: dict[str, Any] = {}
    for path in files:
        state.update(read_state_dict(path))
    extra = src / "mm_projector.bin"  # the pretraining stage keeps the projector in its own file
    if extra.is_file() and not split_projector_keys(state)[0]:
        state.update(read_state_dict(extra))
    return state


def _text_config(config: dict[str, Any]) -> dict[str, Any]:
    model_type = str(config.get("model_type", "llava_llama"))
    text_type = _TEXT_TYPES.get(model_type)
    if text_type is None:
        raise ModelPreparationError(
            f"unsupported language model type {model_type!r}: radassist converts LLaVA on Llama or Mistral"
        )
    text = {
        k: v for k, v in config.items()
        if not k.startswith(("mm_", "vision_tower", "unfreeze_mm", "tune_mm", "freeze_mm"))
        and k not in ("image_aspect_ratio", "image_grid_pinpoints", "use_mm_proj", "tokenizer_padding_side",
                      "tokenizer_model_max_length", "architectures", "model_type", "_name_or_path",
                      "transformers_version", "torch_dtype", "dtype")
    }  # fmt: skip
    text["model_type"] = text_type
    text["architectures"] = [_TEXT_ARCH[text_type]]
    return text


def _grow_rows(matrix: torch.Tensor, rows: int) -> torch.Tensor:
    """``matrix`` with extra rows up to ``rows``, each the mean of the existing ones."""
    import torch

    if matrix.shape[0] >= rows:
        return matrix
    mean = matrix.float().mean(dim=0, keepdim=True).to(matrix.dtype)  # (1, H)
    return torch.cat([matrix, mean.expand(rows - matrix.shape[0], -1)], dim=0)  # (rows, H)


def _save_sharded(state: dict[str, torch.Tensor], folder: Path) -> None:
    """safetensors shards of at most SHARD_BYTES, with the HF index file when there is more than one."""
    from safetensors.torch import save_file

    shards: list[dict[str, torch.Tensor]] = [{}]
    size = 0
    for key in sorted(state):
        tensor = state[key].contiguous()
        nbytes = tensor.numel() * tensor.element_size()
        if shards[-1] and size + nbytes > SHARD_BYTES:
            shards.append({})
            size = 0
        shards[-1][key] = tensor
        size += nbytes
    if len(shards) == 1:
        save_file(shards[0], str(folder / "model.safetensors"), metadata={"format": "pt"})
        return
    weight_map: dict[str, str] = {}
    total = 0
    for i, shard in enumerate(shards, start=1):
        name = f"model-{i:05d}-of-{len(shards):05d}.safetensors"
        save_file(shard, str(folder / name), metadata={"format": "pt"})
        for key, tensor in shard.items():
            weight_map[key] = name
            total += tensor.numel() * tensor.element_size()
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2), encoding="utf-8")


def _probe_encoder(spec: EncoderSpec) -> tuple[int, int] | None:
    """(patch width, tokens per image) of the encoder's architecture, built with random weights; None if unbuildable."""
    import numpy as np

    probe = EncoderSpec(**{**spec.to_dict(), "pretrained": None})
    try:
        features = ImageEncoder(probe).encode([np.zeros((32, 32), np.uint8)])[0]
    except Exception as exc:  # noqa: BLE001 - an architecture we cannot build here only loses the check
        logger.warning("could not build the encoder %s to check its width: %s", spec.model_name, exc)
        return None
    return int(features.patches.shape[1]), int(features.patches.shape[0])


def _processor(tokenizer: Any, image_size: int, spec: EncoderSpec) -> Any:
    """An HF ``LlavaProcessor`` for the folder: vLLM wants one even when only embeddings arrive.

    Its image processor is never used on this path (the client preprocesses with open_clip); it only has to
    describe the same grid as the config (OpenAI CLIP normalisation, ``image_size`` square).
    """
    from transformers import CLIPImageProcessor, LlavaProcessor

    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size},
        crop_size={"height": image_size, "width": image_size},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default" if spec.select_feature == "patch" else "full",
        image_token=IMAGE_TOKEN,
        num_additional_image_tokens=1,  # CLIP's class token, dropped by the "default" strategy
        chat_template=tokenizer.chat_template,
    )


def convert_llava_checkpoint(
    src: Path | str,
    dst: Path | str,
    *,
    encoder: EncoderSpec | None = None,
    chat_template: str | None = None,
    dtype: str = "bfloat16",
    image_tokens: int | None = None,
    overwrite: bool = False,
    progress: Progress | None = None,
) -> ConversionResult:
    """Convert the original-LLaVA checkpoint in ``src`` into a vLLM folder plus vision bundle at ``dst``."""
    import torch
    from transformers import AddedToken, AutoTokenizer, CLIPVisionConfig, LlavaConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    say = progress or (lambda msg: logger.info("%s", msg))
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if dtype not in EMBED_DTYPES:
        raise ModelPreparationError(f"dtype must be one of {', '.join(EMBED_DTYPES)}, got {dtype!r}")
    if dst.exists() and any(dst.iterdir()) and not overwrite:
        raise ModelPreparationError(f"{dst} already exists and is not empty (pass --overwrite to replace it)")
    config = read_llava_config(src)
    _check_supported(config)
    hidden = int(_require(config, "hidden_size"))
    mm_hidden = int(_require(config, "mm_hidden_size"))
    projector_kind = str(config.get("mm_projector_type", "linear"))
    spec = encoder or encoder_spec_for(config)
    if spec.config_path is not None and not Path(spec.config_path).is_file():
        raise ModelPreparationError(f"the encoder architecture file {spec.config_path} does not exist")
    torch_dtype = getattr(torch, dtype)

    say(f"reading the checkpoint in {src}")
    state = _load_weights(src)
    projector_state, rest = split_projector_keys(state)
    projector = projector_from_state_dict(projector_state, kind=projector_kind)
    if projector.in_features != mm_hidden:
        raise ModelPreparationError(
            f"the projector takes {projector.in_features}-wide features but mm_hidden_size is {mm_hidden}"
        )
    if projector.out_features != hidden:
        raise ModelPreparationError(
            f"the projector gives {projector.out_features}-wide embeddings but the language model's hidden size "
            f"is {hidden}: projector and language model do not belong together"
        )
    probed = _probe_encoder(spec)
    if probed is not None:
        width, tokens = probed
        if width != mm_hidden:
            raise ModelPreparationError(
                f"the encoder {spec.model_name} gives {width}-wide features but the checkpoint's projector was "
                f"trained on {mm_hidden}: choose the matching --encoder-model"
            )
        image_tokens = image_tokens or tokens

    language: dict[str, torch.Tensor] = {}
    dropped = 0
    for key, value in rest.items():
        if key.endswith("rotary_emb.inv_freq"):
            continue
        if key.startswith(("model.vision_tower.", "vision_tower.")):
            dropped += 1  # served without a tower; the client runs open_clip
            continue
        if key.startswith("model."):
            language["model.language_model." + key[len("model."):]] = value
        elif key.startswith("lm_head."):
            language[key] = value
        else:
            raise ModelPreparationError(f"unexpected tensor {key!r} in the checkpoint")
    embed_key = "model.language_model.embed_tokens.weight"
    if embed_key not in language:
        raise ModelPreparationError("the checkpoint has no token embeddings (model.embed_tokens.weight)")

    say("adding the image token to the tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(src))
    except (OSError, ValueError) as exc:
        raise ModelPreparationError(f"cannot load the tokenizer in {src}: {exc}") from exc
    if IMAGE_TOKEN not in tokenizer.get_vocab():
        tokenizer.add_tokens([AddedToken(IMAGE_TOKEN, special=True, normalized=False)], special_tokens=True)
    token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    if not isinstance(token_id, int):
        raise ModelPreparationError("the tokenizer could not take the image token")
    image_token_index = token_id
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    elif not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = VICUNA_V1_TEMPLATE
        say("the checkpoint has no chat template: using LLaVA's Vicuna v1 conversation")

    old_vocab = int(language[embed_key].shape[0])
    vocab = max(old_vocab, math.ceil(len(tokenizer) / VOCAB_MULTIPLE) * VOCAB_MULTIPLE)
    language[embed_key] = _grow_rows(language[embed_key], vocab)
    tied = "lm_head.weight" not in language
    if not tied:
        language["lm_head.weight"] = _grow_rows(language["lm_head.weight"], vocab)
    for key, value in list(language.items()):
        language[key] = value.to(torch_dtype) if value.is_floating_point() else value
    if projector.kind == ProjectorType.MLP2X_GELU:  # HF Llava's projector layout; other kinds live in the bundle
        for key, value in projector.state_dict_hf().items():
            language["model." + key] = value.to(torch_dtype)

    text = _text_config(config)
    text["vocab_size"] = vocab
    text["tie_word_embeddings"] = tied
    text_type = text.pop("model_type")
    try:
        text_config = CONFIG_MAPPING[text_type](**text)
    except (TypeError, ValueError) as exc:
        raise ModelPreparationError(f"the language model's config is invalid: {exc}") from exc
    # Only the geometry matters here (the tower is not loaded): a square grid giving image_tokens patches.
    grid = max(1, round(math.sqrt(image_tokens or 576)))
    vision_config = CLIPVisionConfig(
        hidden_size=mm_hidden,
        intermediate_size=4 * mm_hidden,
        num_attention_heads=max(1, mm_hidden // 64),
        patch_size=14,
        image_size=14 * grid,
    )
    llava = LlavaConfig(
        text_config=text_config,
        vision_config=vision_config,
        image_token_index=image_token_index,
        image_seq_length=image_tokens or grid * grid,
        projector_hidden_act="gelu",
        vision_feature_layer=spec.select_layer,
        vision_feature_select_strategy="default" if spec.select_feature == "patch" else "full",
        multimodal_projector_bias=any(k.endswith("bias") for k in projector.module.state_dict()),
        tie_word_embeddings=tied,
    )
    llava.architectures = ["LlavaForConditionalGeneration"]
    llava.dtype = dtype

    dst.parent.mkdir(parents=True, exist_ok=True)
    for stale in dst.parent.glob(f".{dst.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    work = Path(tempfile.mkdtemp(prefix=f".{dst.name}.tmp-", dir=dst.parent))
    try:
        say(f"writing the model folder ({len(language)} tensors, {dtype})")
        llava.save_pretrained(str(work))
        _processor(tokenizer, 14 * grid, spec).save_pretrained(str(work))
        _save_sharded(language, work)
        for name in ("generation_config.json",):
            if (src / name).is_file():
                shutil.copy2(src / name, work / name)
        bundle_dir = work / BUNDLE_DIR
        bundle_dir.mkdir()
        from safetensors.torch import save_file

        save_file(
            {f"model.mm_projector.{k}": v.contiguous() for k, v in projector.module.state_dict().items()},
            str(bundle_dir / PROJECTOR_FILE),
            metadata={"format": "pt", "mm_projector_type": projector.kind},
        )
        bundle_spec = spec
        if spec.config_path is not None:  # travel with the bundle: the source folder may go away
            copied = bundle_dir / Path(spec.config_path).name
            shutil.copy2(spec.config_path, copied)
            bundle_spec = EncoderSpec(**{**spec.to_dict(), "config_path": f"./{copied.name}"})
        if bundle_spec.pretrained and Path(bundle_spec.pretrained).expanduser().is_file():
            pretrained = str(Path(bundle_spec.pretrained).expanduser().resolve())
            bundle_spec = EncoderSpec(**{**bundle_spec.to_dict(), "pretrained": pretrained})
        bundle = VisionBundle(
            folder=bundle_dir,
            encoder=bundle_spec,
            projector_file=bundle_dir / PROJECTOR_FILE,
            projector_type=projector.kind,
            llm_hidden_size=hidden,
            image_tokens=image_tokens,
            embeds_dtype=dtype,
        )
        data = bundle.to_json()
        data["source"] = {
            "mm_vision_tower": config.get("mm_vision_tower"),
            "mm_projector_type": projector_kind,
            "model_type": config.get("model_type"),
        }
        (bundle_dir / BUNDLE_FILE).write_text(json.dumps(data, indent=2), encoding="utf-8")
        if dst.exists():
            shutil.rmtree(dst)
        work.rename(dst)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if dropped:
        say(f"left out {dropped} vision tower tensors (the client runs the encoder)")
    say(f"converted into {dst}")
    return ConversionResult(
        model_dir=dst,
        bundle_file=dst / BUNDLE_DIR / BUNDLE_FILE,
        image_token_index=image_token_index,
        image_tokens=image_tokens,
        llm_hidden_size=hidden,
        projector_type=projector.kind,
        encoder=spec,
        dropped_vision_tower_tensors=dropped,
    )

