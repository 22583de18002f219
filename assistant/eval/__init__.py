"""Evaluation harness: public benchmarks and a site's own data through the product's own answering path.

``vqa`` (VQA-RAD / SLAKE-style questions on images), ``report`` (generated vs reference reports), ``guidelines`` and
``dictation`` (the product's own tasks, once bench scripts), their metrics
(``metrics``, ``chexpert``) and the shared resumable runner (``runner``). Nothing here is imported by the app.
"""
