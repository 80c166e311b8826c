import sys

from jobs import dispatch  # the one place the core reaches into jobs/: wiring the queue at the entry point

if sys.argv[1:2] == ["serve"]:
    # The app's server reads its options without the rest of the command line, so that
    # Streamlit starts half a second sooner; jobs.serve wires the queue once it answers.
    from sparring import serve_options

    sys.exit(serve_options.main(sys.argv[2:], dispatch.QueueDispatcher().serve))

from sparring.cli import main

dispatch.wire()
sys.exit(main())
