"""The I/O side of detection: policy files in, typed detector out; the scan/eval/train commands."""
