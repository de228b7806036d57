"""Builders of tiny local models, tokenizers and LoRA adapters (no network, fixed seeds)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello world, what is the capital of france? paris is the capital.",
    "tiny models write tiny stories about cats and dogs and birds",
    "caf\u00e9 na\u00efve \u00fcber \u65e5\u672c\u8a9e emoji \U0001f600 stop here",
    "STOP END one two three four five six seven eight nine ten",
]
SPECIALS = ["<s>", "</s>", "<pad>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


QWEN_TOOLS_TEMPLATE = (  # Qwen2.5's template (tools in the system turn, <tool_call> / <tool_response>)
    "{%- if tools %}{{- '<|im_start|>system\n' }}{%- if messages[0]['role'] == 'system' %}{{- messages[0]['content'] }}"
    "{%- else %}{{- 'You are a helpful assistant.' }}{%- endif %}"
    "{{- '\n\n# Tools\n\nYou may call one or more functions to assist with the user query.\n\n<tools>' }}"
    "{%- for tool in tools %}{{- '\n' }}{{- tool | tojson }}{%- endfor %}"
    "{{- '\n</tools>\n\nFor each function call, return a json object with function name and arguments within "
    "<tool_call></tool_call> XML tags:\n<tool_call>\n{\"name\": <function-name>, \"arguments\": <args-json-object>}"
    "\n</tool_call><|im_end|>\n' }}"
    "{%- elif messages[0]['role'] == 'system' %}{{- '<|im_start|>system\n' + messages[0]['content'] + '<|im_end|>\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if (message.role == 'user') or (message.role == 'system' and not loop.first) or "
    "(message.role == 'assistant' and not message.tool_calls) %}"
    "{{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}"
    "{%- elif message.role == 'assistant' %}{{- '<|im_start|>' + message.role }}"
    "{%- if message.content %}{{- '\n' + message.content }}{%- endif %}"
    "{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}"
    "{%- set tool_call = tool_call.function %}{%- endif %}"
    "{{- '\n<tool_call>\n{\"name\": \"' }}{{- tool_call.name }}{{- '\", \"arguments\": ' }}"
    "{{- tool_call.arguments | tojson }}{{- '}\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\n' }}"
    "{%- elif message.role == 'tool' %}"
    "{%- if (loop.index0 == 0) or (messages[loop.index0 - 1].role != 'tool') %}{{- '<|im_start|>user' }}{%- endif %}"
    "{{- '\n<tool_response>\n' }}{{- message.content }}{{- '\n</tool_response>' }}"
    "{%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}{{- '<|im_end|>\n' }}{%- endif %}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\n' }}{%- endif %}"
)
LLAMA3_TOOLS_TEMPLATE = (  # Llama 3.1's JSON tool calling (tools in the first user turn, "parameters")
    "{{- bos_token }}{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] %}"
    "{%- set messages = messages[1:] %}{%- else %}{%- set system_message = '' %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\n\n' + system_message + '<|eot_id|>' }}"
    "{%- if tools is not none and messages %}{%- set first = messages[0]['content'] %}{%- set messages = messages[1:] %}"
    "{{- '<|start_header_id|>user<|end_header_id|>\n\nGiven the following functions, please respond with a JSON "
    "for a function call with its proper arguments that best answers the given prompt.\n\n' }}"
    "{{- 'Respond in the format {\"name\": function name, \"parameters\": dictionary of argument name and its "
    "value}. Do not use variables.\n\n' }}"
    "{%- for t in tools %}{{- t | tojson(indent=4) }}{{- '\n\n' }}{%- endfor %}{{- first + '<|eot_id|>' }}{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}"
    "{%- elif 'tool_calls' in message %}{%- set tool_call = message.tool_calls[0].function %}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\n\n{\"name\": \"' + tool_call.name + '\", ' }}"
    "{{- '\"parameters\": ' }}{{- tool_call.arguments | tojson }}{{- '}<|eot_id|>' }}"
    "{%- else %}{{- '<|start_header_id|>ipython<|end_header_id|>\n\n' + message.content + '<|eot_id|>' }}"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{%- endif %}"
)
STYLES: dict[str, dict[str, Any]] = {
    "chatml": {"specials": SPECIALS, "added": [], "template": CHAT_TEMPLATE, "eos": "<|im_end|>"},
    "qwen": {"specials": SPECIALS, "template": QWEN_TOOLS_TEMPLATE, "eos": "<|im_end|>",
             "added": ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>"]},
    "llama3": {"specials": ["<s>", "</s>", "<pad>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
                            "<|python_tag|>"], "added": [], "template": LLAMA3_TOOLS_TEMPLATE, "eos": "<|eot_id|>"},
}
"""Tokenizer styles: plain ChatML (no tools), Qwen2.5-style and Llama-3.1-style tool templates."""


def build_tokenizer(folder: Path, style: str = "chatml") -> Any:
    """A byte-level BPE tokenizer (adds BOS by itself) with a chat template, saved to ``folder``
    (``style``: one of :data:`STYLES`; Qwen's ``<tool_call>`` tags are added, non-special tokens)."""
    from tokenizers import (
        AddedToken,
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        processors,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    spec = STYLES[style]
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=spec["specials"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token=spec["eos"], pad_token="<pad>", unk_token=None
    )
    fast.add_tokens([AddedToken(t, special=False, normalized=False) for t in spec["added"]])
    fast.chat_template = spec["template"]
    fast.save_pretrained(folder)
    return fast


def build_tiny_llama(folder: Path, hidden: int = 32, seed: int = 0, style: str = "chatml") -> Path:
    """A 2-layer Llama with random weights (EOS never wins greedily), saved with its tokenizer
    (of ``style``, see :data:`STYLES`)."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder, style)
    eos = tok.convert_tokens_to_ids(STYLES[style]["eos"])
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512 if style == "chatml" else 2048,  # tool prompts are long
        bos_token_id=tok.bos_token_id,
        eos_token_id=eos,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.5)
        model.lm_head.weight[eos].zero_()
        model.lm_head.weight[tok.pad_token_id].zero_()
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    model.save_pretrained(folder)
    return folder


ARCH_CONFIGS: dict[str, dict[str, Any]] = {
    # hidden 64, head_dim 32: q/k/v start on multiples of 64 rows, so int4 packs them too
    "qwen3": {"head_dim": 32, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
              "use_sliding_window": True, "sliding_window": 24, "max_window_layers": 1},  # layer 1 slides
    "mistral": {"head_dim": 32, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 2,
                "sliding_window": 40},  # every layer slides
    "gemma3_text": {"head_dim": 32, "num_attention_heads": 4, "num_key_value_heads": 2, "num_hidden_layers": 3,
                    "layer_types": ["sliding_attention", "full_attention", "sliding_attention"], "sliding_window": 24,
                    "query_pre_attn_scalar": 8, "final_logit_softcapping": 30.0, "tie_word_embeddings": True,
                    "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                        "full_attention": {"rope_type": "linear", "factor": 2.0, "rope_theta": 1e6}}},
    "phi3": {"num_attention_heads": 2, "num_key_value_heads": 2, "num_hidden_layers": 2, "sliding_window": 40},
}
"""Tiny configs of the architectures the lean step runs besides Llama (sliding layers where they have them)."""


def build_tiny_arch(folder: Path, model_type: str, seed: int = 0) -> Path:
    """A tiny random model of ``model_type`` (see :data:`ARCH_CONFIGS`; hidden 64), saved with
    the ChatML tokenizer; its norm weights are random too (Gemma's (1 + w) starts at w = 0)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    eos = tok.convert_tokens_to_ids(STYLES["chatml"]["eos"])
    extra = dict(ARCH_CONFIGS[model_type])
    config = AutoConfig.for_model(
        model_type, vocab_size=len(tok), hidden_size=64, intermediate_size=128, max_position_embeddings=512,
        bos_token_id=tok.bos_token_id, eos_token_id=eos, pad_token_id=tok.pad_token_id,
        tie_word_embeddings=extra.pop("tie_word_embeddings", False), **extra,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 2:
                p.normal_(0.0, 0.5)
            elif "norm" in name:  # around Gemma's 1 + w = 1 and the others' w = 1
                p.uniform_(-0.3, 0.3) if model_type == "gemma3_text" else p.uniform_(0.7, 1.3)
        model.get_output_embeddings().weight[eos].zero_()
        model.get_output_embeddings().weight[tok.pad_token_id].zero_()
    model.generation_config = GenerationConfig(bos_token_id=tok.bos_token_id, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    model.save_pretrained(folder)
    return folder


def build_tiny_gpt2(folder: Path) -> Path:
    """A 1-layer GPT-2 (an architecture the lean step does not run), with the ChatML tokenizer."""
    from transformers import GPT2Config, GPT2LMHeadModel

    folder.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(folder)
    config = GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=1, n_head=2, n_positions=256,
                        bos_token_id=tok.bos_token_id, eos_token_id=tok.convert_tokens_to_ids("<|im_end|>"))
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


def build_adapter(
    base_folder: Path, out: Path, *, r: int = 4, alpha: int = 8, targets: tuple[str, ...] = ("q_proj", "v_proj"), seed: int = 1
) -> Path:
    """A LoRA adapter with non-zero weights (init_lora_weights=False) for the model at ``base_folder``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32)
    torch.manual_seed(seed)
    cfg = LoraConfig(r=r, lora_alpha=alpha, target_modules=list(targets), init_lora_weights=False, task_type="CAUSAL_LM")
    peft_model = get_peft_model(base, cfg)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_" in name:
                p.normal_(0.0, 0.3)
    peft_model.save_pretrained(out)
    cfg_file = out / "adapter_config.json"
    data = json.loads(cfg_file.read_text())
    data["base_model_name_or_path"] = "tiny-llama"
    cfg_file.write_text(json.dumps(data))
    return out


def _permute(w: Any, n_head: int) -> Any:
    """llama.cpp's Q/K row order for rotary embeddings (transformers undoes it on load)."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def build_tiny_gguf(model_folder: Path, out: Path) -> Path:
    """Write the tiny Llama at ``model_folder`` as a llama.cpp GGUF file (f32, gpt2 BPE tokenizer)."""
    import gguf
    from safetensors.numpy import load_file

    cfg = json.loads((model_folder / "config.json").read_text())
    tok_json = json.loads((model_folder / "tokenizer.json").read_text())
    tok_cfg = json.loads((model_folder / "tokenizer_config.json").read_text())
    vocab = tok_json["model"]["vocab"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    merges = [m if isinstance(m, str) else " ".join(m) for m in tok_json["model"]["merges"]]
    specials = set(SPECIALS)
    n_head, n_kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]

    w = gguf.GGUFWriter(str(out), "llama")
    w.add_context_length(cfg["max_position_embeddings"])
    w.add_embedding_length(cfg["hidden_size"])
    w.add_feed_forward_length(cfg["intermediate_size"])
    w.add_block_count(cfg["num_hidden_layers"])
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_rope_freq_base(cfg.get("rope_theta") or cfg.get("rope_parameters", {}).get("rope_theta", 10000.0))
    w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in specials else 1 for t in tokens])
    w.add_token_merges(merges)
    w.add_bos_token_id(cfg["bos_token_id"])
    w.add_eos_token_id(cfg["eos_token_id"])
    w.add_pad_token_id(cfg["pad_token_id"])
    w.add_add_bos_token(False)
    w.add_chat_template(tok_cfg.get("chat_template") or CHAT_TEMPLATE)
    sd = load_file(str(model_folder / "model.safetensors"))
    names = {
        "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
        "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
        "mlp.down_proj": "ffn_down", "input_layernorm": "attn_norm", "post_attention_layernorm": "ffn_norm",
    }
    w.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    for i in range(cfg["num_hidden_layers"]):
        for hf, gg in names.items():
            t = sd[f"model.layers.{i}.{hf}.weight"]
            if gg == "attn_q":
                t = _permute(t, n_head)
            elif gg == "attn_k":
                t = _permute(t, n_kv)
            w.add_tensor(f"blk.{i}.{gg}.weight", t)
    w.add_tensor("output_norm.weight", sd["model.norm.weight"])
    w.add_tensor("output.weight", sd["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return out
