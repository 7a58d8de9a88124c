/*
 * bench/netcdf/gen.c — writes the NetCDF-4 (HDF5) file bench/netcdf/run.sh
 * reads through the mounts: eight float variables v0..v7 of 32 MiB each
 * (lev 32 × lat 256 × lon 1024), chunked one level per chunk (1 MiB), as
 * model inputs are, no compression; 256 MiB of data in all. The values come
 * from a fixed linear congruential generator, so two runs write the same
 * values (HDF5 stamps no times in the file: the bytes are the same too).
 *
 * Build: cc -O2 -o gen gen.c $(nc-config --cflags --libs)
 * Usage: gen OUT.nc
 */
#include <netcdf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define NVARS 8
#define NLEV 32
#define NLAT 256
#define NLON 1024

static void check(int err, const char *what) {
	if (err != NC_NOERR) {
		fprintf(stderr, "gen: %s: %s\n", what, nc_strerror(err));
		exit(1);
	}
}

int main(int argc, char **argv) {
	if (argc != 2) {
		fprintf(stderr, "usage: gen OUT.nc\n");
		return 2;
	}
	int nc, dims[3], vars[NVARS];
	check(nc_create(argv[1], NC_CLOBBER | NC_NETCDF4, &nc), argv[1]);
	check(nc_def_dim(nc, "lev", NLEV, &dims[0]), "def lev");
	check(nc_def_dim(nc, "lat", NLAT, &dims[1]), "def lat");
	check(nc_def_dim(nc, "lon", NLON, &dims[2]), "def lon");
	size_t chunks[3] = {1, NLAT, NLON};
	for (int v = 0; v < NVARS; v++) {
		char name[8];
		snprintf(name, sizeof name, "v%d", v);
		check(nc_def_var(nc, name, NC_FLOAT, 3, dims, &vars[v]), name);
		check(nc_def_var_chunking(nc, vars[v], NC_CHUNKED, chunks), name);
		check(nc_put_att_text(nc, vars[v], "units", 5, "kg/m2"), name);
	}
	check(nc_put_att_text(nc, NC_GLOBAL, "title", 27, "ferry bench/netcdf data set"), "title");
	check(nc_enddef(nc), "enddef");
	float *buf = malloc(sizeof(float) * NLAT * NLON);
	if (!buf) {
		fprintf(stderr, "gen: out of memory\n");
		return 1;
	}
	uint64_t x = 0x9e3779b97f4a7c15ULL;
	for (int v = 0; v < NVARS; v++) {
		for (size_t l = 0; l < NLEV; l++) {
			for (size_t i = 0; i < (size_t)NLAT * NLON; i++) {
				x = x * 6364136223846793005ULL + 1442695040888963407ULL;
				buf[i] = (float)(x >> 40) / (float)(1 << 24);
			}
			size_t start[3] = {l, 0, 0}, count[3] = {1, NLAT, NLON};
			check(nc_put_vara_float(nc, vars[v], start, count, buf), "put");
		}
	}
	free(buf);
	check(nc_close(nc), "close");
	return 0;
}
