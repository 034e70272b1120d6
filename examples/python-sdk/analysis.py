"""The program the job runs inside the TEE (ppml run, exec engine).

It reads its decrypted input as a pandas DataFrame from the in-memory path ppml.inputs() names,
and writes its output to the in-memory path ppml.outputs() names; ppml run encrypts the output
under the owner's results key once this program exits 0. Nothing here touches a disk.
Standard output leaves the TEE in clear: it prints counts only.
"""
import pandas as pd

import ppml

MIN_GROUP = 5  # diagnoses seen fewer times are left out: they could single out a patient

visits = pd.read_csv(ppml.inputs()["patients"])
summary = (visits.groupby("diagnosis")
           .agg(visits=("patient_id", "size"), patients=("patient_id", "nunique"), mean_cost_eur=("cost_eur", "mean"))
           .reset_index())
summary = summary[summary.visits >= MIN_GROUP].sort_values(["visits", "diagnosis"], ascending=[False, True])
summary["mean_cost_eur"] = summary.mean_cost_eur.round(2)
summary.to_csv(ppml.outputs()["summary"], index=False)
print(f"analysis: {len(visits)} visits in, {len(summary)} diagnoses out")
