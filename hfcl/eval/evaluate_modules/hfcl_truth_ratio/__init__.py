"""The `hfcl_truth_ratio` evaluate module (a package only so that it installs with hfcl)."""
