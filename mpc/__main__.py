from mpc.cli import main

main()
