import ipywidgets
import matplotlib

matplotlib.use("Agg")

from dalle2_lessons import diffusion, shapes, widgets  # noqa: E402


def test_draw_noised_shows_clean_and_each_schedule():
    image = shapes.render(shapes.sample_scenes(1), 16)[0]
    fig = widgets.draw_noised(image, 300, {"linear": diffusion.linear_schedule(), "cosine": diffusion.cosine_schedule()})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "x_0" and titles[1].startswith("linear: t=300") and titles[2].startswith("cosine: t=300")


def test_noising_slider_is_a_widget_over_every_step():
    image = shapes.render(shapes.sample_scenes(1), 16)[0]
    w = widgets.noising_slider(image, {"cosine": diffusion.cosine_schedule(50)})
    assert isinstance(w, ipywidgets.interactive)
    slider = w.children[0]
    assert (slider.min, slider.max) == (0, 49)
    slider.value = 49  # re-draws without error
