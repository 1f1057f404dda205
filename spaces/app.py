"""Hugging Face Space entry point for hfcl: see forgetting happen, side by side.

All logic lives in ``hfcl.space``; this file only builds the app from the Space's variables and serves it:

* ``HFCL_MODELS``: comma-separated models, ``NAME=SOURCE`` or ``SOURCE`` (zoo stages ``target``, ``retain``,
  ``base``; Hub ids of full models or PEFT adapters; run directories). Default ``target,retain``.
* ``HFCL_REPORTS``: extra eval reports, ``NAME=PATH,...`` (a run directory's own reports are found without it).
* ``HFCL_FORGET_SPLIT``: ``forget01``, ``forget05`` or ``forget10`` (default).
* ``HFCL_PRESET``: ``default`` (builds the embedded models on first start, minutes on CPU) or ``tiny`` (seconds).
* ``HFCL_CONTINUAL``: a Hub repo pushed with ``hfcl push --stages`` for the Continual tab (off by default).
* ``HFCL_CONCURRENCY``: requests served at once (default 2; the rest queue).

Run locally with ``python app.py`` or ``hfcl space``.
"""

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from hfcl.space import SpaceSettings, build_space_from_env  # noqa: E402

settings = SpaceSettings(concurrency_limit=int(os.environ.get("HFCL_CONCURRENCY", "2")))
demo = build_space_from_env(settings=settings)
demo.queue(default_concurrency_limit=settings.concurrency_limit, max_size=64)

if __name__ == "__main__":
    demo.launch(ssr_mode=False)
