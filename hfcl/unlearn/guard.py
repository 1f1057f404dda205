"""Inference-time unlearning: the weights stay exactly the target's, a guard decides what the model is shown.

Three guards, one wrapper (:class:`GuardedModel`, a ``transformers`` model that ``generate``, ``hfcl eval``, the
Space and ``hfcl push`` accept, saved and loaded like the ULD wrapper):

* ``ECO`` (Liu et al., NeurIPS 2024, embedding-corrupted prompts): a prompt classifier flags forget-scope prompts;
  a flagged prompt's token embeddings get ``σ·ε`` added (ε a fixed N(0, 1) draw per prompt position and embedding
  dimension, so scoring is deterministic); σ is fitted offline by a zeroth-order search (finite differences on
  log σ) so the forget set's mean answer probability reaches a target: by default the holdout rows' (data of the same
  kind the model never saw), the same aim as the membership stopping rule.
* ``GuardFilter`` (Thaker et al. 2024, an input filter): the same classifier; a flagged prompt is answered with a
  fixed refusal (the first ``idk_answers`` entry, "I don't know." by default) instead of the model's answer.
* ``GuardPrompt`` (Thaker et al. 2024, a system-prompt instruction): every prompt is preceded by an instruction not
  to reveal anything about the forget entities; no classifier.

The classifier (:class:`PromptClassifier`) is a logistic regression (scikit-learn) on hashed token-id unigrams and
bigrams of the prompt, trained on forget (1) vs retain (0) questions; its threshold maximises TPR − FPR on
out-of-fold probabilities (5-fold), so it is chosen on prompts the fold's classifier never saw. Its weights live in
the wrapper as tensors, so the wrapper classifies token ids itself: no tokenizer at inference.

The prompt of a row is located by the chat template's generation marker (the token suffix every rendered prompt
shares, e.g. ``<|assistant|>``): tokens up to and including its first occurrence are the prompt, the rest the answer.
Generation re-reads the prefix at each token (no KV cache), as for ULD.

Where we differ from the ECO paper and its code, and why:

* Classifier: a hashed n-gram logistic regression instead of a fine-tuned RoBERTa (none can be downloaded here; on
  the embedded world the questions name their author, which n-grams see); threshold by out-of-fold TPR − FPR
  instead of a fixed 0.999 / conformal calibration.
* Corruption: noise on every embedding dimension of every prompt token but the generation marker (``eco_dims``
  chooses the first n dimensions, the paper's default ``rand_noise_first_n``); the target of the σ search is the
  holdout's answer probability rather than a benchmark accuracy.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from ..errors import ConfigError, DataError

MODEL_TYPE = "hfcl_guarded"
GUARDS = {"ECO": "eco", "GuardFilter": "filter", "GuardPrompt": "prompt"}
#: Hashed feature buckets per n-gram order (unigrams, bigrams).
FEATURE_BUCKETS = 8192
#: The refusal token's logit above every other token's for a filtered prompt (p ~ 1 - V·e^-50: finite log-probs).
REFUSAL_MARGIN = 50.0
DEFAULT_INSTRUCTION = ("You know nothing about {entities}. If a question is about {them}, answer that you don't "
                       "know, and never reveal any fact about {them}.")


# --- the prompt's location (pure) ------------------------------------------------------------------------------------
def common_suffix(sequences: Sequence[Sequence[int]]) -> list[int]:
    """The longest token suffix every sequence shares (the chat template's generation marker)."""
    if not sequences:
        return []
    suffix = list(sequences[0])
    for seq in sequences[1:]:
        n = 0
        while n < min(len(suffix), len(seq)) and suffix[-1 - n] == seq[-1 - n]:
            n += 1
        suffix = suffix[len(suffix) - n:]
    return suffix


def prompt_bounds(input_ids: torch.Tensor, attention_mask: torch.Tensor | None,
                  marker: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row, ``(start, end)``: the first real token and one past the first occurrence of ``marker`` (the whole
    row when it has none). Left or right padding alike."""
    batch, length = input_ids.shape
    mask = attention_mask.bool() if attention_mask is not None else torch.ones_like(input_ids, dtype=torch.bool)
    positions = torch.arange(length, device=input_ids.device).expand(batch, length)
    start = torch.where(mask, positions, length).amin(dim=1)
    last = torch.where(mask, positions, -1).amax(dim=1) + 1
    m = len(marker)
    if m == 0 or m > length:
        return start, last
    windows = input_ids.unfold(1, m, 1)  # [B, L-m+1, m]
    hit = (windows == torch.tensor(list(marker), device=input_ids.device)).all(-1)
    hit &= mask[:, m - 1:] & mask[:, : length - m + 1]
    first = torch.where(hit, positions[:, : length - m + 1], length).amin(dim=1)
    end = torch.where(first < length, first + m, last)
    return start, end


def span_mask(start: torch.Tensor, end: torch.Tensor, length: int) -> torch.Tensor:
    """``[B, L]`` booleans, true on ``start <= position < end``."""
    positions = torch.arange(length, device=start.device)
    return (positions >= start[:, None]) & (positions < end[:, None])


# --- the classifier (pure features + a scikit-learn fit) --------------------------------------------------------------
def hashed_features(ids: torch.Tensor, keep: torch.Tensor, buckets: int = FEATURE_BUCKETS) -> torch.Tensor:
    """``[B, 2·buckets]`` L2-normalised counts of hashed unigrams and bigrams of the kept token ids (``keep``:
    ``[B, L]`` booleans; a bigram needs both tokens kept)."""
    ids = ids.long()
    uni = (ids * 2654435761) % (2 ** 32) % buckets
    pair = (ids[:, :-1] * 65599 + ids[:, 1:]) % 2147483647
    bi = (pair * 2654435761) % (2 ** 32) % buckets + buckets
    keep_bi = keep[:, :-1] & keep[:, 1:]
    out = torch.zeros(ids.shape[0], 2 * buckets, dtype=torch.float32, device=ids.device)
    out.scatter_add_(1, uni, keep.float())
    out.scatter_add_(1, bi, keep_bi.float())
    return out / out.norm(dim=1, keepdim=True).clamp(min=1e-12)


def youden_threshold(scores: Sequence[float], labels: Sequence[int]) -> float:
    """The threshold maximising TPR − FPR (flag when score >= threshold); among equally good ones, the midpoint of
    the widest gap between a flagged and an unflagged score."""
    import numpy as np

    s, y = np.asarray(scores, float), np.asarray(labels, int)
    if y.min() == y.max():
        raise DataError("The prompt classifier needs forget and retain prompts; one of them is empty.")
    cuts = np.unique(s)
    best, best_j, best_gap = float(cuts[0]), -2.0, -1.0
    for i, cut in enumerate(cuts):
        flagged = s >= cut
        j = flagged[y == 1].mean() - flagged[y == 0].mean()
        below = cuts[i - 1] if i > 0 else cut - 1.0
        gap = cut - below
        if j > best_j + 1e-12 or (abs(j - best_j) <= 1e-12 and gap > best_gap):
            best, best_j, best_gap = float((cut + below) / 2), float(j), float(gap)
    return best


class PromptClassifier:
    """Logistic regression on :func:`hashed_features`; ``weight``/``bias``/``threshold`` are all it keeps."""

    def __init__(self, weight: torch.Tensor, bias: float, threshold: float, report: dict[str, Any] | None = None):
        self.weight, self.bias, self.threshold = weight, float(bias), float(threshold)
        self.report = report or {}

    @classmethod
    def fit(cls, prompts: Sequence[Sequence[int]], labels: Sequence[int], seed: int = 0,
            folds: int = 5) -> PromptClassifier:
        """Fit on token-id prompts (1 = forget scope); the threshold from out-of-fold probabilities."""
        import numpy as np
        from scipy.sparse import csr_matrix
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_predict

        y = np.asarray(labels, int)
        positives, negatives = int(y.sum()), int(len(y) - y.sum())
        if min(positives, negatives) < 2:
            raise DataError(f"The prompt classifier needs at least 2 forget and 2 retain prompts (got {positives} "
                            f"and {negatives}).")
        x = csr_matrix(features_of(prompts).numpy())
        make = lambda: LogisticRegression(C=10.0, class_weight="balanced", max_iter=2000)  # noqa: E731
        k = min(folds, positives, negatives)
        oof = cross_val_predict(make(), x, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                                method="decision_function")
        threshold = youden_threshold(oof, y)
        flagged = oof >= threshold
        final = make().fit(x, y)
        report = {"prompts": {"forget": positives, "retain": negatives}, "folds": k,
                  "held_out_tpr": round(float(flagged[y == 1].mean()), 4),
                  "held_out_fpr": round(float(flagged[y == 0].mean()), 4), "threshold": round(threshold, 4)}
        return cls(torch.tensor(final.coef_[0], dtype=torch.float32), float(final.intercept_[0]), threshold, report)

    def scores(self, prompts: Sequence[Sequence[int]]) -> torch.Tensor:
        return features_of(prompts) @ self.weight + self.bias


def features_of(prompts: Sequence[Sequence[int]]) -> torch.Tensor:
    """:func:`hashed_features` of token-id lists of any lengths."""
    length = max(len(p) for p in prompts)
    ids = torch.zeros(len(prompts), max(length, 2), dtype=torch.long)
    keep = torch.zeros_like(ids, dtype=torch.bool)
    for i, p in enumerate(prompts):
        ids[i, : len(p)] = torch.tensor(list(p), dtype=torch.long)
        keep[i, : len(p)] = True
    return hashed_features(ids, keep)


# --- the wrapper ---------------------------------------------------------------------------------------------------
class GuardedConfig(PretrainedConfig):
    """Config of :class:`GuardedModel`: the base model's config, the guard and its settings."""

    model_type = MODEL_TYPE

    def __init__(self, base: dict | None = None, guard: str = "eco", marker: list[int] | None = None,
                 threshold: float = 0.0, sigma: float = 0.0, dims: int = 0, noise_seed: int = 0,
                 refusal: list[int] | None = None, prefix: list[int] | None = None, **kwargs):
        self.base = base or {}
        self.guard, self.marker, self.threshold = guard, list(marker or []), float(threshold)
        self.sigma, self.dims, self.noise_seed = float(sigma), int(dims), int(noise_seed)
        self.refusal, self.prefix = list(refusal or []), list(prefix or [])
        kwargs.setdefault("tie_word_embeddings", bool(self.base.get("tie_word_embeddings", False)))
        super().__init__(**kwargs)
        for key in ("vocab_size", "eos_token_id", "bos_token_id", "pad_token_id", "hidden_size"):
            if key in self.base and getattr(self, key, None) is None:
                setattr(self, key, self.base[key])


class GuardedModel(PreTrainedModel, GenerationMixin):
    """The base model behind a guard (see the module docstring); ``unguarded()`` is the base itself."""

    config_class = GuardedConfig
    base_model_prefix = "guarded"
    _keys_to_ignore_on_load_missing = [r"lm_head\.weight$"]

    def __init__(self, config: GuardedConfig, base=None):
        super().__init__(config)
        if base is None:
            values = dict(config.base)
            base = AutoModelForCausalLM.from_config(AutoConfig.for_model(values.pop("model_type"), **values))
        self.base = base
        buckets = 2 * FEATURE_BUCKETS if config.guard in ("eco", "filter") else 0
        self.register_buffer("classifier_weight", torch.zeros(buckets), persistent=True)
        self.register_buffer("classifier_bias", torch.zeros(1), persistent=True)
        if getattr(base.config, "tie_word_embeddings", False):
            self._tied_weights_keys = {f"base.{k}": f"base.{v}"
                                       for k, v in (getattr(base, "_tied_weights_keys", None) or {}).items()}
        self._noise: torch.Tensor | None = None
        self.post_init()

    @classmethod
    def from_base(cls, base, guard: str, marker: Sequence[int], classifier: PromptClassifier | None = None,
                  sigma: float = 0.0, dims: int = 0, noise_seed: int = 0, refusal: Sequence[int] = (),
                  prefix: Sequence[int] = ()) -> GuardedModel:
        config = GuardedConfig(base=base.config.to_dict(), guard=guard, marker=list(marker),
                               threshold=classifier.threshold if classifier else 0.0, sigma=sigma, dims=dims,
                               noise_seed=noise_seed, refusal=list(refusal), prefix=list(prefix))
        model = cls(config, base=base)
        if classifier is not None:
            model.classifier_weight.copy_(classifier.weight)
            model.classifier_bias.fill_(classifier.bias)
        if getattr(base, "generation_config", None) is not None:
            model.generation_config = copy.deepcopy(base.generation_config)
        return model.to(next(base.parameters()).device).eval()

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        return False  # the guard reads the whole prompt at every step

    def tie_weights(self, *args, **kwargs):
        if getattr(self.base.config, "tie_word_embeddings", False):
            self.base.tie_weights()

    def get_input_embeddings(self):
        return self.base.get_input_embeddings()

    def unguarded(self):
        """The weights behind the guard (the target's, unchanged): what anyone holding the weights can run."""
        return self.base

    # -- the guard's pieces
    def flags(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
        """``[B]`` booleans: the classifier flags the row's prompt (ECO, GuardFilter); every row for GuardPrompt."""
        if self.config.guard == "prompt":
            return torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        start, end = prompt_bounds(input_ids, attention_mask, self.config.marker)
        keep = span_mask(start, end, input_ids.shape[1])
        score = hashed_features(input_ids, keep) @ self.classifier_weight.float() + self.classifier_bias.float()
        return score >= self.config.threshold

    def noise(self, length: int, hidden: int, device) -> torch.Tensor:
        """The fixed N(0, 1) draw ``[length, hidden]`` (by prompt position), from ``noise_seed``; grown on demand."""
        if self._noise is None or self._noise.shape[0] < length or self._noise.shape[1] != hidden:
            rows = max(length, 256)
            gen = torch.Generator().manual_seed(self.config.noise_seed)
            self._noise = torch.randn(rows, hidden, generator=gen)
        return self._noise[:length].to(device)

    def _corrupt(self, input_ids, attention_mask, flagged):
        embeds = self.base.get_input_embeddings()(input_ids)
        start, end = prompt_bounds(input_ids, attention_mask, self.config.marker)
        end = torch.where(end - start > len(self.config.marker), end - len(self.config.marker), end)  # marker kept
        where = span_mask(start, end, input_ids.shape[1]) & flagged[:, None]
        offset = (torch.arange(input_ids.shape[1], device=input_ids.device) - start[:, None]).clamp(min=0)
        eps = self.noise(input_ids.shape[1], embeds.shape[-1], embeds.device)[offset]  # [B, L, H]
        if self.config.dims:
            eps[..., self.config.dims:] = 0
        return embeds + (self.config.sigma * eps * where[..., None]).to(embeds.dtype)

    def _refuse(self, logits, input_ids, attention_mask, flagged):
        _, end = prompt_bounds(input_ids, attention_mask, self.config.marker)
        refusal = torch.tensor(self.config.refusal + [self.config.eos_token_id], device=logits.device)
        k = torch.arange(logits.shape[1], device=logits.device) - (end[:, None] - 1)  # 0 predicts the 1st answer token
        after = (k >= 0) & flagged[:, None]
        token = refusal[k.clamp(0, len(refusal) - 1)]
        forced = torch.zeros_like(logits).scatter_(-1, token[..., None], REFUSAL_MARGIN)
        return torch.where(after[..., None], forced, logits)

    def forward(self, input_ids=None, attention_mask=None, labels=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, **kwargs):
        if past_key_values is not None or inputs_embeds is not None:
            raise ValueError("GuardedModel keeps no KV cache and takes token ids: pass the whole sequence as "
                             "input_ids.")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        flagged = self.flags(input_ids, attention_mask)
        guard = self.config.guard
        ids, mask = input_ids, attention_mask
        if guard == "prompt" and self.config.prefix:
            prefix = torch.tensor(self.config.prefix, device=input_ids.device).expand(input_ids.shape[0], -1)
            ids, mask = torch.cat([prefix, input_ids], 1), torch.cat([torch.ones_like(prefix), attention_mask], 1)
        positions = (mask.long().cumsum(-1) - 1).clamp(min=0)
        inputs = {"attention_mask": mask, "position_ids": positions, "use_cache": False}
        if guard == "eco" and bool(flagged.any()):
            logits = self.base(inputs_embeds=self._corrupt(ids, mask, flagged), **inputs).logits
        else:
            logits = self.base(input_ids=ids, **inputs).logits
        logits = logits[:, ids.shape[1] - input_ids.shape[1]:].float()
        if guard == "filter" and bool(flagged.any()):
            logits = self._refuse(logits, input_ids, attention_mask, flagged)
        loss = None
        if labels is not None:
            loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                                     labels[:, 1:].reshape(-1), ignore_index=-100)
        return CausalLMOutputWithPast(loss=loss, logits=logits)

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        return {"input_ids": input_ids, "attention_mask": attention_mask}

    def _update_model_kwargs_for_generation(self, outputs, model_kwargs, is_encoder_decoder=False, num_new_tokens=1):
        mask = model_kwargs.get("attention_mask")
        if mask is not None:
            model_kwargs["attention_mask"] = torch.cat([mask, mask.new_ones((mask.shape[0], num_new_tokens))], -1)
        model_kwargs.pop("past_key_values", None)
        return model_kwargs


def register() -> None:
    """Let ``AutoConfig`` / ``AutoModelForCausalLM`` load saved guarded run folders (idempotent)."""
    try:
        AutoConfig.register(MODEL_TYPE, GuardedConfig)
    except ValueError:
        pass
    try:
        AutoModelForCausalLM.register(GuardedConfig, GuardedModel)
    except ValueError:
        pass


register()


# --- fitting a guard -------------------------------------------------------------------------------------------------
def _prompt(tokenizer, row: dict[str, Any]) -> list[int]:
    from ..data.formatting import example_to_messages, prompt_ids

    return prompt_ids(tokenizer, example_to_messages(row)[0])


def generation_marker(tokenizer) -> list[int]:
    """The tokens every rendered prompt ends with after the user's text (the chat template's generation marker,
    e.g. ``<|assistant|>``; ``Answer:`` for the plain format): the common suffix of two prompts that share no text."""
    marker = common_suffix([_prompt(tokenizer, {"question": q, "answer": ""}) for q in ("alpha", "Beta gamma.")])
    if not marker:
        raise DataError("The rendered prompts end with no common tokens, so the answer cannot be told from the "
                        "prompt; use a tokenizer with a chat template (add_generation_prompt) or the plain "
                        "'Question/Answer' format.")
    return marker


def mean_answer_prob(model, tokenizer, rows: Sequence[dict[str, Any]], batch_size: int = 32,
                     max_length: int = 256) -> float:
    """Mean per-token answer probability ``exp(−mean NLL)`` of ``rows`` (one batched pass)."""
    from ..data.formatting import example_to_messages
    from ..eval.scoring import ScoringPlan

    plan = ScoringPlan(tokenizer, max_length)
    ids = []
    for row in rows:
        messages, answer = example_to_messages(row)
        ids.append(plan.qa(messages[-1]["content"], answer))
    with torch.no_grad():
        scores = plan.score(model, batch_size=batch_size, distributed=False)
    return float(sum(math.exp(-scores[i].avg_nll) for i in ids) / len(ids))


def search_sigma(score, target: float, start: float, iterations: int = 12, step: float = 0.25,
                 tolerance: float = 0.01, flat: float = 1e-3) -> tuple[float, list[dict[str, float]]]:
    """Zeroth-order search of σ with ``score(σ) ≈ target``: on u = log σ, a central finite difference
    ``(f(u+h) − f(u−h)) / 2h`` of ``f = score`` gives the slope for a Newton step on ``f(u) − target`` (at most one
    unit of u, i.e. a factor e, per step). It stops within ``tolerance`` of the target, or where f no longer moves
    (|slope| < ``flat`` per unit of u: more noise would change nothing, the target is out of reach). Returns the
    evaluated σ whose score is closest to the target (the smaller σ among near-equals) and every evaluation."""
    u, trace, centres = math.log(start), [], []

    def f(x: float) -> float:
        value = float(score(math.exp(x)))
        trace.append({"sigma": math.exp(x), "score": value})
        return value

    for _ in range(iterations):
        value = f(u)
        centres.append((abs(value - target), u))
        if abs(value - target) <= tolerance:
            break
        slope = (f(u + step) - f(u - step)) / (2 * step)
        if abs(slope) < flat:
            break
        move = -(value - target) / slope if slope < 0 else (1.0 if value > target else -1.0)
        u += max(-1.0, min(1.0, move))
    closest = min(gap for gap, _ in centres)
    best = min(x for gap, x in centres if gap <= closest + 1e-3)
    return math.exp(best), trace


def entity_instruction(rows: Sequence[dict[str, Any]], field: str) -> str:
    names = list(dict.fromkeys(str(r[field]) for r in rows if r.get(field)))
    if not names:
        raise DataError(f"GuardPrompt names the forget entities in its instruction, but no forget row has a "
                        f"{field!r} column; set guard_instruction (the instruction text) or whp_entity_field.")
    entities = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return DEFAULT_INSTRUCTION.format(entities=entities, them="them" if len(names) > 1 else "this person")


def instruction_ids(tokenizer, text: str) -> list[int]:
    """The instruction as a system turn of the chat template (plain text + newline without one)."""
    if getattr(tokenizer, "chat_template", None):
        try:
            rendered = tokenizer.apply_chat_template([{"role": "system", "content": text}], tokenize=False)
            return tokenizer(rendered, add_special_tokens=False)["input_ids"]
        except Exception:  # noqa: BLE001 - a template without a system role: fall back to plain text
            pass
    return tokenizer(text + "\n", add_special_tokens=True)["input_ids"]


def fit_guard(base, tokenizer, method: str, forget_rows: list[dict], retain_rows: list[dict],
              holdout_rows: list[dict] | None, config) -> tuple[GuardedModel, dict[str, Any]]:
    """Build the guard ``method`` (ECO, GuardFilter, GuardPrompt) around ``base`` (left unchanged): classifier,
    σ search or instruction. Returns the wrapper and what was fitted (``hfcl_run.json``'s ``guard``)."""
    guard = GUARDS[method]
    base = base.eval()
    for p in base.parameters():
        p.requires_grad_(False)
    marker = generation_marker(tokenizer)
    record: dict[str, Any] = {"guard": guard, "marker": tokenizer.decode(marker)}
    classifier = None
    if guard in ("eco", "filter"):
        if not retain_rows:
            raise DataError(f"{method} trains its prompt classifier on forget vs retain questions: give retain rows.")
        prompts = [_prompt(tokenizer, r) for r in forget_rows] + [_prompt(tokenizer, r) for r in retain_rows]
        labels = [1] * len(forget_rows) + [0] * len(retain_rows)
        classifier = PromptClassifier.fit(prompts, labels, seed=config.seed)
        if config.guard_threshold is not None:
            classifier.threshold = float(config.guard_threshold)
        record["classifier"] = {**classifier.report, "threshold": classifier.threshold}
    if guard == "eco":
        target = config.eco_target
        if target is None:
            if not holdout_rows:
                raise ConfigError("ECO fits σ so the forget set's answer probability reaches a target: give holdout "
                                  "rows (the embedded holdout split, --holdout_file) or eco_target.")
            target = mean_answer_prob(base, tokenizer, holdout_rows, config.per_device_eval_batch_size,
                                      config.max_length)
        weight = base.get_input_embeddings().weight
        start = float(weight.float().std())  # the embeddings' own scale

        def score(sigma: float) -> float:
            wrapped = GuardedModel.from_base(base, "eco", marker, classifier, sigma, config.eco_dims, config.seed)
            return mean_answer_prob(wrapped, tokenizer, forget_rows, config.per_device_eval_batch_size,
                                    config.max_length)

        if config.eco_sigma is not None:
            sigma, trace = float(config.eco_sigma), []
        else:
            sigma, trace = search_sigma(score, target, start)
        record["eco"] = {"target_answer_prob": round(float(target), 4), "sigma": sigma, "search": trace,
                         "dims": config.eco_dims or "all"}
        return GuardedModel.from_base(base, "eco", marker, classifier, sigma, config.eco_dims, config.seed), record
    if guard == "filter":
        from .data import IDK_ANSWERS

        text = (config.idk_answers or IDK_ANSWERS)[0]
        record["refusal"] = text
        refusal = tokenizer(text, add_special_tokens=False)["input_ids"]
        return GuardedModel.from_base(base, "filter", marker, classifier, refusal=refusal), record
    text = config.guard_instruction or entity_instruction(forget_rows, config.whp_entity_field)
    record["instruction"] = text
    return GuardedModel.from_base(base, "prompt", marker, prefix=instruction_ids(tokenizer, text)), record


__all__ = ["GUARDS", "GuardedConfig", "GuardedModel", "PromptClassifier", "common_suffix", "fit_guard",
           "generation_marker", "hashed_features", "mean_answer_prob", "prompt_bounds", "register", "search_sigma",
           "youden_threshold"]
