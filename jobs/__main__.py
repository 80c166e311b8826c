import runpy

runpy.run_module("jobs.worker", run_name="__main__")
