"""Comparisons beyond pooled mIoU (issue 19): paired bootstrap intervals, boundary quality, likely label
errors and missed objects. Qt-free and independent of app.inference: everything here works on label maps in
an EvalScheme's id space and on the per-image confusion matrices of app.core.domain.metrics."""
