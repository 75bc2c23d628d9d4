from uptake_cli.app import main

main()
