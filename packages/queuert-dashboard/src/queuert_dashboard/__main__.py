from queuert_dashboard.serve import main

main()
