{
  description = "gourd: declarative, content-hashed pipelines for machine learning";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    flake-utils.url = "github:numtide/flake-utils";
  };

  outputs = { self, nixpkgs, flake-utils }:
    flake-utils.lib.eachDefaultSystem (system:
      let
        pkgs = import nixpkgs { inherit system; };
        gourd = pkgs.rustPlatform.buildRustPackage {
          pname = "gourd";
          version = "0.1.0";
          src = ./.;
          cargoLock.lockFile = ./Cargo.lock;
          cargoBuildFlags = [ "-p" "gourd-cli" ];
          nativeBuildInputs = [ pkgs.git ];
          # The end-to-end tests run the binary in temporary git repositories.
          nativeCheckInputs = [ pkgs.git ];
        };
      in
      {
        packages.default = gourd;
        packages.gourd = gourd;

        apps.default = flake-utils.lib.mkApp { drv = gourd; name = "gourd"; };

        devShells.default = pkgs.mkShell {
          inputsFrom = [ gourd ];
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.rustfmt
            pkgs.clippy
            pkgs.cargo-nextest
            pkgs.nickel
            pkgs.git
            # For the libtorch wheel used by the `torch` feature, and the
            # test servers (moto, BuildGrid) in tests/servers/.
            (pkgs.python3.withPackages (ps: [ ps.pip ]))
            # BuildGrid's scheduler database, for the remote-execution tests.
            pkgs.postgresql
            pkgs.curl
          ];
        };
      });
}
