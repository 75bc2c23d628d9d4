from uptake_cli.entry import main

main()
