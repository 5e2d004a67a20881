"""neurotrans.analysis: regional means, diagnosis SVM, paired tests and Bland-Altman,
MS lesion contrast, myelin indices and the EDSS regression (plain functions on arrays)."""
