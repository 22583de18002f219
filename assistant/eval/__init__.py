"""Evaluation harness: public benchmarks and a site's own data through the product's own answering path.

``vqa`` (VQA-RAD / SLAKE-style questions on images), ``report`` (generated vs reference reports), their metrics
(``metrics``, ``chexpert``) and the shared resumable runner (``runner``). Nothing here is imported by the app.
"""
