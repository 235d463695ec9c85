import ipywidgets
import matplotlib

matplotlib.use("Agg")

from dalle2_lessons import diffusion, shapes, widgets  # noqa: E402


def test_draw_noised_shows_clean_and_each_schedule():
    image = shapes.render(shapes.sample_scenes(1), 16)[0]
    fig = widgets.draw_noised(image, 300,
                              {"linear": diffusion.linear_schedule(), "cosine": diffusion.cosine_schedule()})
    titles = [ax.get_title() for ax in fig.axes]
    assert titles[0] == "x_0" and titles[1].startswith("linear: t=300") and titles[2].startswith("cosine: t=300")


def test_noising_slider_is_a_widget_over_every_step():
    image = shapes.render(shapes.sample_scenes(1), 16)[0]
    w = widgets.noising_slider(image, {"cosine": diffusion.cosine_schedule(50)})
    assert isinstance(w, ipywidgets.interactive)
    slider = w.children[0]
    assert (slider.min, slider.max) == (0, 49)
    slider.value = 49  # re-draws without error


def test_prompt_explorer_generates_on_demand_and_survives_bad_prompts():
    from dalle2_lessons.tokenizer import PromptError, Tokenizer

    calls = []

    def generate(prompt, scale, seed):
        calls.append((prompt, scale, seed))
        Tokenizer().encode(prompt)  # raises PromptError for words outside the vocabulary
        return shapes.render(shapes.sample_scenes(4), 16)

    w = widgets.prompt_explorer(generate, prompt="a red circle", scale=2.0, describe=lambda x, p: f"{len(x)} images")
    assert isinstance(w, ipywidgets.interactive) and calls == []  # nothing runs until "generate" is clicked
    w.update()
    assert calls == [("a red circle", 2.0, 0)]
    w.children[0].value = "a purple unicorn"
    w.update()  # the PromptError is reported, not raised
    assert calls[-1][0] == "a purple unicorn"
    try:
        Tokenizer().encode("a purple unicorn")
    except PromptError:
        pass
    else:
        raise AssertionError("expected the test prompt to be unreadable")
