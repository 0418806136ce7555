"""The benchmark of AD-DROP's training cost against plain fine-tuning: measure.py (what is measured and how),
timing.py (clocks and memory), machine.py (the machine, the allocator), report.py (goals and the table)."""
