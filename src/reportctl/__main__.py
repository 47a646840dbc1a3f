from reportctl.cli import main

main()
